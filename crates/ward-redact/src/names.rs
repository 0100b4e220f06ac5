//! Which names (of variables, fields, flags, headers, JSON keys) hold a
//! secret: `GITHUB_TOKEN`, `db.password`, `clientSecret`, `x-api-key`,
//! `Authorization`, `--token`; but not `token_id`, `max_tokens`,
//! `password_file` or `author`.

/// The keywords that make a name a candidate (lowercase; the automaton
/// ignores ASCII case). Every sensitive name contains one of them.
pub(crate) const KEYWORDS: &[&str] = &[
    "token",
    "secret",
    "pass",
    "pwd",
    "auth",
    "cookie",
    "session",
    "sessid",
    "credential",
    "creds",
    "apikey",
    "api_key",
    "api-key",
    "api.key",
    "privatekey",
    "private_key",
    "private-key",
    "accesskey",
    "access_key",
    "access-key",
    "signingkey",
    "signing_key",
    "encryptionkey",
    "encryption_key",
    "masterkey",
    "master_key",
    "jwt",
    "otp",
];

/// Words that make a name sensitive wherever they stand in it.
const SENSITIVE_WORDS: &[&str] = &[
    "token",
    "secret",
    "secrets",
    "password",
    "passwords",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "credential",
    "credentials",
    "creds",
    "auth",
    "authorization",
    "cookie",
    "cookies",
    "session",
    "apikey",
    "privatekey",
    "jwt",
    "otp",
];

/// Endings of the name with its separators removed that make it sensitive
/// (`GITHUBTOKEN`, `x-api-key`, `aws_secret_access_key`, `mysqlpassword`).
const SENSITIVE_ENDINGS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "privatekey",
    "secretkey",
    "accesskey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "credentials",
    "sessionid",
    "sessid",
];

/// Endings that make a name sensitive even when its last word is metadata
/// (a session id is the session).
const ALWAYS_SENSITIVE_ENDINGS: &[&str] = &["sessionid", "sessid"];

/// Last words that make a name describe a secret rather than hold it:
/// `token_id`, `password_file`, `secret_name`, `token_expires_at`.
const METADATA_WORDS: &[&str] = &[
    "count",
    "len",
    "length",
    "size",
    "type",
    "kind",
    "name",
    "names",
    "file",
    "path",
    "dir",
    "id",
    "ids",
    "expiry",
    "expires",
    "expiration",
    "exp",
    "ttl",
    "timeout",
    "at",
    "time",
    "ms",
    "secs",
    "seconds",
    "required",
    "enabled",
    "hash",
    "digest",
    "prefix",
    "policy",
    "format",
    "mode",
    "scope",
    "scopes",
    "source",
    "status",
    "state",
    "version",
    "algorithm",
    "alg",
    "method",
    "provider",
    "issuer",
    "audience",
    "endpoint",
    "url",
    "uri",
    "header",
    "env",
    "var",
    "hint",
    "label",
    "limit",
    "used",
    "max",
    "min",
    "rotation",
    "lifetime",
    "error",
    "errors",
    "reason",
    "result",
    "service",
    "server",
    "host",
    "port",
    "user",
    "username",
    "description",
    "issue",
    "issued",
    "refresh",
    "revoke",
    "revoked",
    "valid",
    "location",
];

/// The most bytes of a name that are classified; a longer "name" is not one.
const MAX_NAME: usize = 128;

/// Whether `name` (a variable, field, flag, header or JSON key) holds a
/// secret. Case is ignored; `_`, `-`, `.`, spaces and camelCase split
/// words; leading dashes (flags) and `$` are ignored. A name is sensitive
/// when one of its words is sensitive (`token`, `secret`, `password`,
/// `passwd`, `pwd`, `pass`, `passphrase`, `credentials`, `auth`,
/// `authorization`, `cookie`, `session`, `apikey`, `jwt`, …) or, with the
/// separators removed, it ends in one (`githubtoken`, `xapikey`,
/// `awssecretaccesskey`), unless its last word says it is about a secret
/// rather than the secret (`id`, `file`, `name`, `expires`, `count`, …):
/// `token_id` and `max_tokens` are not sensitive, `session_id` is.
pub fn is_sensitive_name(name: &str) -> bool {
    let name = name.trim_start_matches(['-', '$']);
    if name.is_empty() || name.len() > MAX_NAME {
        return false;
    }
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (index, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        // camelCase: a capital after a lowercase letter or digit, or the
        // last capital of an acronym before a lowercase letter (`XMLHttp`).
        let previous = index.checked_sub(1).and_then(|i| chars.get(i)).copied();
        let following = chars.get(index + 1).copied();
        let boundary = c.is_uppercase()
            && previous.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && following.is_some_and(char::is_lowercase))
            });
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    let Some(last) = words.last() else {
        return false;
    };
    let joined: String = words.concat();
    if ALWAYS_SENSITIVE_ENDINGS.iter().any(|e| joined.ends_with(e)) {
        return true;
    }
    if METADATA_WORDS.contains(&last.as_str()) {
        return false;
    }
    words.iter().any(|w| SENSITIVE_WORDS.contains(&w.as_str()))
        || SENSITIVE_ENDINGS.iter().any(|e| joined.ends_with(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_hold_secrets_are_sensitive() {
        for name in [
            "password",
            "PASSWORD",
            "db_password",
            "DB_PASS",
            "MYSQL_PWD",
            "mysqlpassword",
            "GITHUB_TOKEN",
            "githubToken",
            "access_token",
            "AccessToken",
            "api_key",
            "apiKey",
            "x-api-key",
            "X-API-KEY",
            "apikey",
            "client_secret",
            "clientSecret",
            "AWS_SECRET_ACCESS_KEY",
            "private_key",
            "privateKey",
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "Set-Cookie",
            "session",
            "session_id",
            "PHPSESSID",
            "credentials",
            "--password",
            "--token",
            "spring.datasource.password",
            "$GITHUB_TOKEN",
            "passphrase",
            "auth",
            "basic_auth",
            "jwt",
            "signing_key",
        ] {
            assert!(is_sensitive_name(name), "{name} should be sensitive");
        }
    }

    #[test]
    fn names_about_secrets_and_ordinary_names_are_not() {
        for name in [
            "author",
            "authors",
            "token_id",
            "tokenId",
            "max_tokens",
            "input_tokens",
            "tokenizer",
            "password_file",
            "PASSWORD_FILE",
            "secret_name",
            "token_expires_at",
            "token_type",
            "passed",
            "bypass",
            "compass",
            "secretary",
            "key",
            "kid",
            "correlation_id",
            "action",
            "target",
            "sessions_count",
            "auth_error",
            "token.issue",
            "",
            "--",
        ] {
            assert!(!is_sensitive_name(name), "{name} should not be sensitive");
        }
    }
}
