//! The QR code of `verification_uri_complete` (`verification_uri_complete_qr`, Vestibule's
//! extension): announced in discovery, linked from the device authorization response, served
//! as SVG and PNG for any code-shaped string without looking it up, cacheable, cookie-free.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use serde_json::Value;
use vestibule_core::services::workspaces::Changes;

use crate::helpers::TestApp;

/// A device asks; returns the device authorization response.
async fn device_asks(app: &TestApp) -> Value {
    let ws = app.workspace("tv", Changes::default()).await;
    let (client_id, _) = app.client(&ws, true, &["device_code"], "openid").await;
    let res = app
        .client
        .post(app.url("/w/tv/device_authorization"))
        .form(&[("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// A fresh client with no cookie store, as a device fetching an image is.
async fn fetch(url: &str) -> reqwest::Response {
    reqwest::Client::new().get(url).send().await.unwrap()
}

/// The image's headers every answer carries: cacheable, no cookie.
fn assert_cacheable_without_cookies(res: &reqwest::Response) {
    assert!(
        res.headers().get(SET_COOKIE).is_none(),
        "{:?}",
        res.headers()
    );
    let cache = res.headers()[CACHE_CONTROL].to_str().unwrap();
    assert!(
        cache.contains("public") && cache.contains("max-age=3600"),
        "{cache}"
    );
}

#[tokio::test]
async fn the_device_response_links_a_qr_code_of_its_complete_uri_as_svg_and_png() {
    let app = TestApp::spawn().await;
    let body = device_asks(&app).await;
    let public_url = &app.core.settings.server.public_url;
    let qr = body["verification_uri_complete_qr"].as_str().unwrap();
    let user_code = body["user_code"].as_str().unwrap();
    assert_eq!(
        qr,
        format!("{public_url}/activate/qr?user_code={user_code}")
    );
    assert!(
        qr.starts_with("http://") || qr.starts_with("https://"),
        "absolute: {qr}"
    );

    let svg = fetch(qr).await;
    assert_eq!(svg.status(), StatusCode::OK);
    assert_eq!(svg.headers()[CONTENT_TYPE], "image/svg+xml");
    assert_cacheable_without_cookies(&svg);
    let text = svg.text().await.unwrap();
    assert!(text.starts_with("<svg"), "{text}");
    assert!(text.contains("role=\"img\"") && text.contains("aria-label="));

    let png = fetch(&format!("{qr}&format=png")).await;
    assert_eq!(png.status(), StatusCode::OK);
    assert_eq!(png.headers()[CONTENT_TYPE], "image/png");
    assert_cacheable_without_cookies(&png);
    let bytes = png.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    // It decodes as a PNG of at least 200×200 pixels, and as a QR code of the link.
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.width, frame.height);
    assert!(frame.width >= 200, "{}", frame.width);
    assert_eq!(frame.color_type, png::ColorType::Grayscale);
    assert_eq!(frame.bit_depth, png::BitDepth::Eight);
    let side = frame.width as usize;
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| pixels[y * side + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, body["verification_uri_complete"].as_str().unwrap());
}

#[tokio::test]
async fn any_code_shaped_string_gets_its_qr_code_and_anything_else_a_400() {
    let app = TestApp::spawn().await;
    // No grant has this code: the endpoint looks nothing up, so it tells nothing either.
    for path in [
        "/activate/qr?user_code=BCDF-GHJK",
        "/activate/qr?user_code=bcdf%20ghjk&format=svg",
        "/activate/qr?user_code=bcdf-ghjk&format=",
        "/activate/qr?user_code=123-456&format=png&utm_source=tv",
    ] {
        let res = fetch(&app.url(path)).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_cacheable_without_cookies(&res);
    }
    for (path, names) in [
        ("/activate/qr", "user_code"),
        ("/activate/qr?user_code=", "user_code"),
        ("/activate/qr?user_code=not%20a%20code!", "user_code"),
        ("/activate/qr?user_code=AEIOUAEI", "user_code"),
        ("/activate/qr?user_code=BCDFGHJKLMNPQ", "user_code"),
        ("/activate/qr?user_code=BCDF-GHJK&format=gif", "format"),
    ] {
        let res = fetch(&app.url(path)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(res.headers().get(SET_COOKIE).is_none());
        let text = res.text().await.unwrap();
        assert!(text.contains(names), "{path}: {text}");
    }
}

#[tokio::test]
async fn discovery_announces_the_qr_extension() {
    let app = TestApp::spawn().await;
    app.workspace("tv", Changes::default()).await;
    for path in [
        "/w/tv/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/w/tv",
    ] {
        let document: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(
            document["verification_uri_complete_qr_supported"], true,
            "{path}"
        );
    }
}
