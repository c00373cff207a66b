-- Org units decide data scopes (a team-scoped caller sees the team's subtree, a
-- branch-scoped one the branch's), so a change to the org tree now bumps the access
-- stamp as a change to roles or permissions does. The server keeps each user's data
-- scope with the user's cached access under that stamp instead of reading every org
-- unit on every request; a change on any instance, or by hand in SQL, decides the next
-- request.
--@sqlite
CREATE TRIGGER org_units_access_stamp_insert AFTER INSERT ON org_units
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER org_units_access_stamp_update AFTER UPDATE ON org_units
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER org_units_access_stamp_delete AFTER DELETE ON org_units
BEGIN UPDATE access_stamp SET n = n + 1 WHERE id = 1; END;
--@end
--@postgres
CREATE TRIGGER org_units_access_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON org_units
    FOR EACH STATEMENT EXECUTE FUNCTION zhudai_bump_access_stamp();
--@end
