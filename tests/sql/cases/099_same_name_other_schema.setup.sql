CREATE SCHEMA other;
CREATE TABLE other.users (id int PRIMARY KEY, email text);
INSERT INTO other.users VALUES (1, 'plain@example.com'), (2, 'other@example.com');
