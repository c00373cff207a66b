-- Staff personal data (员工个人信息): mobile and ID number, stored only encrypted under the
-- person's own data key, with HMAC blind indexes for exact-match search.
ALTER TABLE users ADD COLUMN phone_enc {{BLOB}};
ALTER TABLE users ADD COLUMN phone_bidx TEXT;
ALTER TABLE users ADD COLUMN id_number_enc {{BLOB}};
ALTER TABLE users ADD COLUMN id_number_bidx TEXT;
CREATE INDEX users_phone_bidx_idx ON users (phone_bidx);
CREATE INDEX users_id_number_bidx_idx ON users (id_number_bidx);
