-- expect: same
UPDATE users u SET bio = 'has readings'
FROM readings r WHERE r.user_id = u.id AND u.id = 100
RETURNING u.id, u.bio, u.email;
