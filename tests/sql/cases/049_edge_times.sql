-- expect: same
INSERT INTO users (id, name, wake_time) VALUES
    (100, 't1', '24:00'), (101, 't2', '00:00:00.000001'), (102, 't3', '23:59:59.999999'),
    (103, 't4', 'allballs'), (104, 't5', '12:00:00.5');
SELECT id, wake_time FROM users WHERE id >= 100 ORDER BY id;
