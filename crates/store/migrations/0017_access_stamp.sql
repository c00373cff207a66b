-- A number that changes whenever anything that decides what a signed-in user may do
-- changes: the user row (status, org unit, two-factor), roles, role assignments,
-- permissions and clear-field rules. Triggers bump it, so no code path can forget to.
-- The server caches each user's roles, permissions and fields under this number and
-- reads it with the session on every request: a change anywhere (on any instance)
-- takes effect on the next request.
CREATE TABLE access_stamp (
    id BIGINT PRIMARY KEY CONSTRAINT access_stamp_single CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO access_stamp (id, n) VALUES (1, 1);
--@sqlite
CREATE TRIGGER users_access_stamp_insert AFTER INSERT ON users
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER users_access_stamp_update AFTER UPDATE ON users
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER users_access_stamp_delete AFTER DELETE ON users
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER roles_access_stamp_insert AFTER INSERT ON roles
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER roles_access_stamp_update AFTER UPDATE ON roles
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER roles_access_stamp_delete AFTER DELETE ON roles
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER user_roles_access_stamp_insert AFTER INSERT ON user_roles
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER user_roles_access_stamp_update AFTER UPDATE ON user_roles
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER user_roles_access_stamp_delete AFTER DELETE ON user_roles
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER role_permissions_access_stamp_insert AFTER INSERT ON role_permissions
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER role_permissions_access_stamp_update AFTER UPDATE ON role_permissions
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER role_permissions_access_stamp_delete AFTER DELETE ON role_permissions
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER role_field_access_access_stamp_insert AFTER INSERT ON role_field_access
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER role_field_access_access_stamp_update AFTER UPDATE ON role_field_access
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER role_field_access_access_stamp_delete AFTER DELETE ON role_field_access
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
--@end
--@postgres
CREATE FUNCTION zhudai_bump_access_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE access_stamp SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER users_access_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_bump_access_stamp();
CREATE TRIGGER roles_access_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_bump_access_stamp();
CREATE TRIGGER user_roles_access_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON user_roles
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_bump_access_stamp();
CREATE TRIGGER role_permissions_access_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON role_permissions
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_bump_access_stamp();
CREATE TRIGGER role_field_access_access_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON role_field_access
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_bump_access_stamp();
--@end
