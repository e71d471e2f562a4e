-- expect: same
INSERT INTO readings (id, user_id, taken_on, kind, reading, note, taken_day)
VALUES (100, 1, '2024-02-01', 'bp', 101.0, 'evening', '2024-02-01')
RETURNING *;
