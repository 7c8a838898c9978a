-- Event subscriptions: an event posted to a topic makes one task per matching one.
CREATE TABLE subscriptions (
    tenant_id text NOT NULL,
    name text NOT NULL,
    topic text NOT NULL,
    config bytea NOT NULL,              -- JSON SubscriptionSpec
    created_at double precision NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX subscriptions_topic ON subscriptions(tenant_id, topic);
