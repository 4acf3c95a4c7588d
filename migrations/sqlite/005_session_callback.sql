-- A session's default webhook (SessionRegistered.callback_url), for requests that name none.
ALTER TABLE sessions ADD COLUMN callback_url TEXT;
