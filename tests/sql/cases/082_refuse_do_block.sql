-- expect: error 0A000
DO $$ BEGIN PERFORM email FROM users; END $$;
