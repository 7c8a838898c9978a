-- SQLite. Subscriptions: the functions a topic's events fan out to.

-- name: put_subscription
INSERT INTO subscriptions (tenant_id, name, topic, config, created_at)
VALUES (:tenant_id, :name, :topic, :config, :now)
ON CONFLICT (tenant_id, name) DO UPDATE SET topic = excluded.topic, config = excluded.config;

-- name: list_subscriptions
SELECT name, topic, config, created_at FROM subscriptions
WHERE tenant_id = :tenant_id AND (:topic IS NULL OR topic = :topic) ORDER BY name;

-- name: delete_subscription
DELETE FROM subscriptions WHERE tenant_id = :tenant_id AND name = :name RETURNING name;
