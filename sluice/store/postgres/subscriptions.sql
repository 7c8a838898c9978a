-- PostgreSQL. Subscriptions: the functions a topic's events fan out to.

-- name: put_subscription
INSERT INTO subscriptions (tenant_id, name, topic, config, created_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, name) DO UPDATE SET topic = excluded.topic, config = excluded.config;

-- name: list_subscriptions
SELECT name, topic, config, created_at FROM subscriptions
WHERE tenant_id = $1 AND ($2::text IS NULL OR topic = $2) ORDER BY name;

-- name: delete_subscription
DELETE FROM subscriptions WHERE tenant_id = $1 AND name = $2 RETURNING name;
