-- expect: same
INSERT INTO users (id, name, avatar, token, prefs) VALUES
    (100, 'b1', '\x00', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"a": 1, "a": 2, "b": {}}'),
    (101, 'b2', '\xb501', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12}', 'null'),
    (102, 'b3', 'plain text as bytea', 'a0eebc999c0b4ef8bb6d6bb9bd380a13', '[1.0, "ü", {"z": null}]');
SELECT id, avatar, token, prefs FROM users WHERE id >= 100 ORDER BY id;
