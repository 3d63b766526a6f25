//! Who may look: the dashboard takes the same user tokens as the gRPC API. A user pastes a token
//! once on the login page; it is kept in an HttpOnly cookie that scripts cannot read and other
//! sites cannot send (`SameSite=Strict`). Scripts may send `Authorization: Bearer` instead.
//! Without a valid user token nothing but the login page is served: 401 without one, 403 for an
//! agent's token.

use super::error::ApiError;
use super::Dashboard;
use crate::auth::{Bearer, Caller};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{header, HeaderMap, StatusCode};

/// The cookie holding the token, hex-encoded so any token fits a cookie's value.
pub const COOKIE: &str = "sweep_token";
/// The longest token accepted from a login form or a cookie; token files hold far shorter ones.
pub const MAX_TOKEN_BYTES: usize = 1024;
/// A cookie lasts a working week; logging out or a changed token file ends it sooner.
const COOKIE_MAX_AGE_S: u64 = 7 * 24 * 3600;

/// The token a request presents: the bearer header first, then the cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(|t| t.trim().to_string());
    }
    for cookies in headers.get_all(header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else { continue };
        for pair in cookies.split(';') {
            if let Some(hex) = pair.trim().strip_prefix(COOKIE).and_then(|rest| rest.strip_prefix('=')) {
                return unhex(hex);
            }
        }
    }
    None
}

/// Lets a user's request through with its [`Caller`] attached; answers anyone else with the login
/// page (pages) or a JSON error (the API and the page's assets).
pub async fn require_user(State(d): State<Dashboard>, mut req: Request, next: Next) -> Response {
    let denied = match d.tokens.identify(presented(req.headers()).as_deref()) {
        Bearer::User(caller) => {
            req.extensions_mut().insert(caller);
            return next.run(req).await;
        }
        Bearer::Agent => (StatusCode::FORBIDDEN, "an agent token cannot open the dashboard: use a user token"),
        Bearer::Missing => (StatusCode::UNAUTHORIZED, "the dashboard needs a user token"),
        Bearer::Unknown => (StatusCode::UNAUTHORIZED, "invalid token: it is not in --user-tokens"),
    };
    if req.uri().path().starts_with("/api/") || req.uri().path().starts_with("/ui/assets/") {
        ApiError::new(denied.0, denied.1).into_response()
    } else {
        (denied.0, super::assets::headers(), Html(login_page(Some(denied.1)))).into_response()
    }
}

/// Who made the request, as [`require_user`] admitted it.
pub fn caller(req_caller: Option<axum::Extension<Caller>>) -> Caller {
    req_caller.map(|c| c.0).unwrap_or_else(Caller::open)
}

pub async fn login_form() -> Response {
    (super::assets::headers(), Html(login_page(None))).into_response()
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(d): State<Dashboard>, form: axum::Form<LoginForm>) -> Response {
    let token = form.0.token.trim().to_string();
    let refused = |status, why| (status, super::assets::headers(), Html(login_page(Some(why)))).into_response();
    if token.len() > MAX_TOKEN_BYTES {
        return refused(StatusCode::UNAUTHORIZED, "invalid token: it is longer than any token file holds");
    }
    match d.tokens.identify(Some(&token)) {
        Bearer::User(_) => {
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={COOKIE_MAX_AGE_S}",
                hex(token.as_bytes())
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/")).into_response()
        }
        Bearer::Agent => refused(StatusCode::FORBIDDEN, "an agent token cannot open the dashboard: use a user token"),
        Bearer::Missing | Bearer::Unknown => {
            refused(StatusCode::UNAUTHORIZED, "invalid token: it is not in --user-tokens")
        }
    }
}

pub async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}

/// The login page: a form and, after a refusal, why. It carries no data of any sweep.
fn login_page(why: Option<&str>) -> String {
    let why = why.map(|w| format!("<p class=\"error\">{}</p>", super::assets::escape(w))).unwrap_or_default();
    super::assets::LOGIN_HTML.replace("<!--why-->", &why)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    if !text.len().is_multiple_of(2) || text.len() > 2 * MAX_TOKEN_BYTES {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_survives_the_cookie_and_a_forged_cookie_is_no_token() {
        let token = "tok;en=with spaces\"and,commas";
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("other=1; {COOKIE}={}", hex(token.as_bytes())).parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some(token));
        for forged in ["zz", "abc", &"61".repeat(MAX_TOKEN_BYTES + 1), "ff"] {
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, format!("{COOKIE}={forged}").parse().unwrap());
            assert_eq!(presented(&h), None, "{forged:.20}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("abc"));
    }
}
