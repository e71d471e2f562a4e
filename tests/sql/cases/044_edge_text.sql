-- expect: same
INSERT INTO users (id, name, email, bio, nickname) VALUES
    (100, 'e1', '', '', ''),
    (101, 'e2', 'ÄÖÜ@bücher.de', '日本語のテキスト 🎌', 'zero-width​joiner'),
    (102, 'e3', 'o''brien@example.com', E'tab\tnewline\nbackslash\\', '"quoted"');
SELECT id, email, bio, nickname FROM users WHERE id >= 100 ORDER BY id;
