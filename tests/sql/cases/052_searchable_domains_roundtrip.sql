-- expect: same
INSERT INTO readings (id, user_id, taken_on, kind, reading, note, taken_day) VALUES
    (100, 1, '2024-03-01', 'bp', 1.50, NULL, '2024-03-01'),
    (101, 2, '2024-03-02', 'hr', -99.990, 'x', '-infinity');
SELECT id, reading, note, taken_day FROM readings WHERE id >= 100 ORDER BY id;
