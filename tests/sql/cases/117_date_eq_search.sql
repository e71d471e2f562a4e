-- expect: same
SELECT id, taken_day FROM readings WHERE taken_day = '2024-01-01' AND kind <> 'x' ORDER BY id;
