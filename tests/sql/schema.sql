-- The schema of the differential suite (crates/e2e/tests/differential.rs), as a template.
--
-- Each `{type}` placeholder names a pgseal domain without its schema (docs/format.md 2.1). The
-- runner instantiates this file twice, in two databases of the same cluster:
--   plain:  `{text}`, `{text_eq}`, `{email}`, `{phone}` -> text, `{date}` -> date, ...
--   sealed: `{text}` -> pgseal.text, `{text_eq}` -> pgseal.text_eq, `{date}` -> pgseal.date, ...
-- Columns without a placeholder are plaintext in both databases: the cases filter, join and
-- order on them.

CREATE TABLE users (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    team        text,
    email       {email},
    phone       {phone},
    ssn         {text_eq},
    bio         {text},
    nickname    {varchar},
    active      {bool},
    level       {int2},
    points      {int4},
    balance     {int8},
    ratio       {float4},
    weight      {float8},
    score       {numeric},
    avatar      {bytea},
    birth_date  {date},
    wake_time   {time},
    created_at  {timestamp},
    last_login  {timestamptz},
    token       {uuid},
    prefs       {jsonb}
);

CREATE TABLE readings (
    id          integer PRIMARY KEY,
    user_id     integer NOT NULL REFERENCES users (id),
    taken_on    date NOT NULL,
    kind        text NOT NULL,
    reading     {numeric_eq},
    note        {text},
    taken_day   {date_eq}
);

CREATE VIEW user_contacts AS
    SELECT id, name, email, phone FROM users;
