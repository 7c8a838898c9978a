-- Event subscriptions: an event posted to a topic makes one task per matching one.
CREATE TABLE subscriptions (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    topic TEXT NOT NULL,
    config TEXT NOT NULL,               -- JSON SubscriptionSpec
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX subscriptions_topic ON subscriptions(tenant_id, topic);
