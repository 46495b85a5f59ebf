-- Linking an OpenID Connect identity to an existing account by its e-mail address takes the
-- account over for the identity's owner: the issuer has verified that they own the address,
-- while whoever signed up with a password on it never had to. Without this, someone who
-- registered first with a password on another person's address kept password access to the
-- account after its real owner signed in with Google. The password is cleared (the account
-- becomes an OIDC account), and the audit log says so.
CREATE OR REPLACE FUNCTION ml_oidc_user(p_iss text, p_sub text, p_email text, p_name text)
RETURNS TABLE (outcome text, user_id uuid, display_name text, user_json json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    had_password boolean;
BEGIN
    SELECT u.id INTO user_id FROM users u WHERE u.oidc_issuer = p_iss AND u.oidc_subject = p_sub;
    IF user_id IS NOT NULL THEN
        outcome := 'found';
    ELSE
        SELECT u.id, u.password_hash IS NOT NULL INTO user_id, had_password
        FROM users u
        WHERE lower(u.email) = lower(p_email) AND u.oidc_issuer IS NULL
        FOR UPDATE;
        IF user_id IS NOT NULL THEN
            UPDATE users u SET oidc_issuer = p_iss, oidc_subject = p_sub,
                               password_hash = NULL, signup_method = 'oidc'
            WHERE u.id = user_id;
            INSERT INTO audit_log (actor_id, action, detail)
            VALUES (user_id, 'user.oidc-link',
                    jsonb_build_object('issuer', p_iss, 'password_cleared', had_password));
            outcome := 'linked';
        ELSE
            INSERT INTO users (email, display_name, signup_method, oidc_issuer, oidc_subject)
            VALUES (p_email, p_name, 'oidc', p_iss, p_sub)
            ON CONFLICT DO NOTHING
            RETURNING id INTO user_id;
            outcome := CASE WHEN user_id IS NULL THEN 'conflict' ELSE 'created' END;
        END IF;
    END IF;
    -- a new statement, a new snapshot: the row made above is visible here
    SELECT u.display_name, json_build_object('id', u.id, 'email', u.email,
               'display_name', u.display_name, 'signup_method', u.signup_method,
               'created_at', u.created_at)
    INTO display_name, user_json FROM users u WHERE u.id = user_id;
    RETURN NEXT;
END
$$;
