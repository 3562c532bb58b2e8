//! The demo tenant app and the backend-for-frontend in a real browser (headless Chromium
//! through chromedriver; see browser.rs): sign in, read the tenancy, open a maintenance
//! request, sign out, and check that no token ever reaches the page.
//!
//! Skipped loudly without Chromium (failing if `CI` is set); bounded in time like every
//! browser test. Run alone with `cargo test -p deedbolt --test api bff_browser`.

use std::time::Duration;

use fantoccini::Client;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::bff::{estate, spawn_bff, PASSWORD, SESSION, TESS, TOM};
use crate::browser::{browser_available, within_budget, Browser};
use crate::helpers::*;

/// How long to wait for the app to show something (it fetches through the BFF).
const WAIT: Duration = Duration::from_secs(10);

/// Polls the text of the element matching `css` until `ok` holds, for up to [`WAIT`].
pub(crate) async fn wait_text(
    browser: &Browser,
    css: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let el = browser.wait_for(css).await;
        let text = browser.step(&format!("read `{css}`"), el.text()).await;
        if ok(&text) {
            return text;
        }
        if Instant::now() >= deadline {
            browser
                .fail(&format!(
                    "`{css}` still reads {text:?} after {WAIT:?}; expected {what}"
                ))
                .await
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until the element matching `css` is displayed, for up to [`WAIT`].
pub(crate) async fn wait_displayed(browser: &Browser, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let el = browser.wait_for(css).await;
        if browser
            .step(&format!("is `{css}` displayed"), el.is_displayed())
            .await
        {
            return;
        }
        if Instant::now() >= deadline {
            browser
                .fail(&format!("`{css}` still hidden after {WAIT:?}"))
                .await
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The WebDriver client behind `browser` (for cookies and scripts).
pub(crate) async fn client(browser: &Browser) -> Client {
    browser.wait_for("html").await.client()
}

/// Runs `script` in the page (a returned promise is awaited).
pub(crate) async fn js(browser: &Browser, script: &str) -> Value {
    let c = client(browser).await;
    browser
        .step(&format!("run `{script}`"), c.execute(script, vec![]))
        .await
}

/// `(name, value, HttpOnly, SameSite, path)` of every cookie of the current page (as
/// WebDriver sees them: those that would be sent to the page's URL).
async fn cookies(browser: &Browser) -> Vec<(String, String, bool, String, String)> {
    let c = client(browser).await;
    browser
        .step("read the cookies", c.get_all_cookies())
        .await
        .into_iter()
        .map(|k| {
            (
                k.name().to_owned(),
                k.value().to_owned(),
                k.http_only().unwrap_or(false),
                k.same_site().map(|s| s.to_string()).unwrap_or_default(),
                k.path().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Asserts that nothing token-like is in the page: no JWT, no refresh token, none of the
/// given tokens, in the source or in `document.cookie`.
async fn assert_no_token_in_page(browser: &Browser, tokens: &[&str], where_: &str) {
    let source = browser.source().await;
    let jar = js(browser, "return document.cookie").await;
    let jar = jar.as_str().unwrap_or_default().to_owned();
    for needle in ["eyJ", "dbr_"].iter().chain(tokens) {
        if source.contains(needle) {
            browser
                .fail(&format!("{where_}: the page source holds {needle}"))
                .await
        }
        assert!(
            !jar.contains(needle),
            "{where_}: document.cookie holds {needle}: {jar}"
        );
    }
    assert!(
        !jar.contains(SESSION),
        "{where_}: the HttpOnly session cookie is visible to script: {jar}"
    );
}

#[tokio::test]
async fn the_demo_app_signs_in_reads_requests_and_signs_out_in_a_real_browser() {
    if !browser_available("the_demo_app_signs_in_reads_requests_and_signs_out_in_a_real_browser") {
        return;
    }
    within_budget(async {
        let b = spawn_bff().await;
        let app = &b.app;
        let e = estate(app).await;
        let browser = Browser::start().await;
        let app_url = format!("{}/app", app.base);

        // Signed out: the app offers the sign-in link.
        browser.goto(&app_url).await;
        wait_displayed(&browser, "#signed-out").await;
        wait_text(&browser, "#status", "Signed out.", |t| t == "Signed out.").await;
        assert_no_token_in_page(&browser, &[], "signed out").await;

        // Sign in: the BFF sends the browser through login and consent and back.
        browser.click("#signin").await;
        browser.type_into("input[name=email]", TOM).await;
        browser
            .type_into("input[name=password][type=password]", PASSWORD)
            .await;
        browser.click("button#login[type=submit]").await;
        browser.click("button#approve[type=submit]").await;
        let url = browser.wait_for_url(&app_url).await;
        assert_eq!(url, app_url, "back at the app");

        // Tom's tenancy, balance and requests; not Tess's.
        wait_displayed(&browser, "#signed-in").await;
        let balance = wait_text(&browser, "#balance", "a balance", |t| !t.is_empty()).await;
        assert_eq!(balance, "GBP 250.00");
        let name = wait_text(&browser, "#tenant-name", "a name", |t| !t.is_empty()).await;
        assert_eq!(name, "Tom Tenant");
        assert_eq!(
            wait_text(&browser, "#tenant-unit", "a unit", |t| !t.is_empty()).await,
            "4B"
        );
        // "Signed in as": the name the BFF read from UserInfo.
        let who = wait_text(&browser, "#who", "a name", |t| !t.is_empty()).await;
        assert_eq!(who, "Tom Tenant", "signed in as");
        let requests = wait_text(&browser, "#requests", "Tom's request", |t| {
            t.contains("Leaking tap")
        })
        .await;
        assert!(!requests.contains("Broken window"), "{requests}");
        wait_text(&browser, "#status", "Up to date.", |t| t == "Up to date.").await;
        assert_eq!(
            js(
                &browser,
                "return document.querySelectorAll('#requests li').length"
            )
            .await,
            json!(1)
        );

        // The session cookie, seen where it applies (Path=/bff): HttpOnly, SameSite=Strict,
        // sealed; and still invisible to script there.
        browser.goto(&format!("{}/bff/session", app.base)).await;
        let session: Value =
            serde_json::from_str(&browser.wait_for("pre").await.text().await.unwrap())
                .expect("/bff/session is JSON");
        assert_eq!(session["authenticated"], true, "{session}");
        assert_eq!(session["sub"], e.tom_user.as_str());
        let all = cookies(&browser).await;
        let Some((_, sealed, http_only, same_site, path)) =
            all.iter().find(|c| c.0 == SESSION).cloned()
        else {
            panic!("no {SESSION} cookie in the browser: {all:?}")
        };
        assert!(http_only, "{all:?}");
        assert_eq!(same_site, "Strict", "{all:?}");
        assert_eq!(path, "/bff", "{all:?}");
        assert!(
            sealed.starts_with("v1.") && !sealed.contains("eyJ"),
            "{sealed}"
        );
        let inside = b
            .open(&sealed)
            .expect("the browser's cookie opens with the BFF key");
        let access = inside["tokens"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let refresh = inside["tokens"]["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_no_token_in_page(&browser, &[&access, &refresh], "/bff/session").await;

        // Back in the app: open a request.
        browser.goto(&app_url).await;
        wait_text(&browser, "#status", "Up to date.", |t| t == "Up to date.").await;
        assert_no_token_in_page(&browser, &[&access, &refresh], "signed in").await;
        browser
            .type_into("#new-title", "Boiler makes a noise")
            .await;
        browser
            .type_into("#new-description", "A loud bang every morning at six.")
            .await;
        let select = browser.wait_for("#new-priority").await;
        browser
            .step("choose urgent", select.select_by_value("urgent"))
            .await;
        browser.click("#submit-request").await;
        wait_text(&browser, "#status", "Request sent.", |t| {
            t == "Request sent."
        })
        .await;
        let requests = wait_text(&browser, "#requests", "the new request", |t| {
            t.contains("Boiler makes a noise")
        })
        .await;
        assert!(requests.contains("Leaking tap"), "{requests}");
        assert!(requests.contains("urgent priority"), "{requests}");
        assert!(!requests.contains("Broken window"), "{requests}");
        assert!(
            !browser
                .wait_for("#form-error")
                .await
                .is_displayed()
                .await
                .unwrap(),
            "no form error"
        );

        // Stored for Tom, by Tom's user, as the machine client sees it.
        let (status, page) = app
            .crm_call(
                Method::GET,
                &format!("/api/maintenance?tenant_id={}&limit=100", e.tom),
                Some(&e.admin),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        let new = items
            .iter()
            .find(|r| r["title"] == "Boiler makes a noise")
            .unwrap_or_else(|| panic!("the new request is not Tom's: {page}"));
        assert_eq!(new["tenant_id"], e.tom, "{new}");
        assert_eq!(new["priority"], "urgent", "{new}");
        assert_eq!(new["description"], "A loud bang every morning at six.");
        assert_eq!(items.len(), 2, "{page}");
        let (_, tess_page) = app
            .crm_call(
                Method::GET,
                &format!("/api/maintenance?tenant_id={}&limit=100", e.tess),
                Some(&e.admin),
                None,
            )
            .await;
        let tess_ids: Vec<&Value> = tess_page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["id"])
            .collect();
        assert_eq!(tess_ids, vec![&json!(e.tess_request)], "{tess_page}");

        // Sign out.
        browser.click("#signout").await;
        wait_displayed(&browser, "#signed-out").await;
        wait_text(&browser, "#status", "Signed out.", |t| t == "Signed out.").await;
        assert!(
            !browser
                .wait_for("#signed-in")
                .await
                .is_displayed()
                .await
                .unwrap(),
            "the signed-in section is hidden"
        );

        // The cookie is gone from the browser (read where it would apply).
        browser.goto(&format!("{}/bff/session", app.base)).await;
        let session: Value =
            serde_json::from_str(&browser.wait_for("pre").await.text().await.unwrap())
                .expect("/bff/session is JSON");
        assert_eq!(session["authenticated"], false, "{session}");
        let all = cookies(&browser).await;
        assert!(all.iter().all(|c| c.0 != SESSION), "{all:?}");
        // The app's API calls are refused (a fetch from the app's page, which its CSP
        // allows), and so is the API opened directly.
        browser.goto(&app_url).await;
        wait_displayed(&browser, "#signed-out").await;
        let status = js(
            &browser,
            "return fetch('/bff/api/tenants', {credentials: 'same-origin'}).then(r => r.status)",
        )
        .await;
        assert_eq!(status, json!(401));
        browser.goto(&format!("{}/bff/api/tenants", app.base)).await;
        let text = browser.text().await;
        assert!(text.contains("not_signed_in"), "{text}");
        browser.close().await;

        // The tokens that were in use are revoked: the sealed cookie replayed from outside
        // the browser is refused, and so are its tokens, presented directly.
        let mut stolen = Jar::default();
        stolen.set(SESSION, &sealed);
        let res = app.browser_get("/bff/api/tenants", &stolen).await;
        assert_eq!(res.status(), 401, "the replayed cookie after sign-out");
        let res = app.get("/api/tenants", Some(&access)).await;
        assert_eq!(res.status(), 401, "the access token after sign-out");
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", &refresh)
            .finish();
        let res = app.post_token(Some(&b.client), &form).await;
        assert_eq!(res.status(), 400, "the refresh token after sign-out");

        // Tess, meanwhile, was never affected.
        let tess = crate::bff::bff_sign_in(app, TESS, PASSWORD).await;
        let res = app.browser_get("/bff/api/maintenance", &tess).await;
        let page: Value = res.json().await.unwrap();
        assert!(!page.to_string().contains("Boiler makes a noise"), "{page}");
    })
    .await;
}
