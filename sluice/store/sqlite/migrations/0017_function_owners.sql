-- Function settings have owners (issue 19): `config` is the code's (a worker's hello or
-- the app's registration), `overrides` the operator's fields (a JSON object; NULL: none),
-- which a worker's hello never touches. `code_at`: when code last registered the
-- function (NULL: never; a function set only by an operator, an HTTP target).
ALTER TABLE functions ADD COLUMN overrides TEXT;
ALTER TABLE functions ADD COLUMN code_at REAL;
UPDATE functions SET code_at = updated_at;
