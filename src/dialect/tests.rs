use http::{header, Request, StatusCode};
use serde_json::{json, Value};

use super::*;
use crate::error::{ErrorCode, FieldError};

fn body_json(response: &Response<ErrorBody>) -> Value {
    serde_json::from_slice(response.body().as_bytes()).expect("a JSON body")
}

fn universal() -> [(ApiError, u16, u8, Value, Value); 4] {
    [
        (
            ApiError::unauthorized(),
            401,
            16,
            json!({"error": "unauthorized"}),
            json!({"code": 4, "message": "Not authenticated", "errors": []}),
        ),
        (
            ApiError::forbidden(),
            403,
            7,
            json!({"error": "forbidden"}),
            json!({"code": 3, "message": "Not authorized", "errors": []}),
        ),
        (
            ApiError::too_many_items().with_detail("too_many_items: at most 5 items per request"),
            400,
            3,
            json!({"error": "too_many_items"}),
            json!({"code": 6, "message": "Model not valid",
                   "errors": ["too_many_items: at most 5 items per request"]}),
        ),
        (
            ApiError::server_error(),
            500,
            13,
            json!({"error": "server_error"}),
            json!({"code": 1, "message": "Server error", "errors": []}),
        ),
    ]
}

#[test]
fn universal_errors_in_both_dialects() {
    for (error, status, _, bulk, coded) in universal() {
        for (dialect, expected) in [
            (&Bulk as &dyn Dialect, bulk),
            (&Coded::new() as &dyn Dialect, coded),
        ] {
            let response = ErrorFormat::http().render(dialect, &error);
            assert_eq!(response.status().as_u16(), status, "{error}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(
                response.headers()[header::CONTENT_LENGTH],
                response.body().as_bytes().len().to_string().as_str()
            );
            assert_eq!(body_json(&response), expected, "{error}");
            assert_eq!(
                response
                    .extensions()
                    .get::<RenderedError>()
                    .unwrap()
                    .error(),
                &error
            );
            assert_eq!(
                response.headers().get(header::WWW_AUTHENTICATE).is_some(),
                status == 401
            );
        }
    }
}

#[test]
fn grpc_requests_get_trailers_only_for_every_universal_error() {
    let request = Request::post("/bulk.Webhooks/Create")
        .header(header::CONTENT_TYPE, "application/grpc+proto")
        .header(header::ACCEPT, "application/problem+json")
        .body(())
        .unwrap();
    let format = ErrorFormat::for_request(&request);
    assert!(format.is_grpc());
    for (error, _, grpc_status, _, _) in universal() {
        for dialect in [&Bulk as &dyn Dialect, &Coded::new(), &ProblemDetails::new()] {
            let response = format.render(dialect, &error);
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/grpc");
            assert_eq!(
                response.headers()["grpc-status"],
                grpc_status.to_string().as_str()
            );
            assert_eq!(response.headers()["grpc-message"], error.code().as_str());
            assert!(response.body().as_bytes().is_empty());
            assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
        }
    }
}

#[test]
fn seed_coded_example_comes_out_exactly() {
    let request = Request::get("/v1/customer/courses?page=1&page_size=X")
        .header(header::AUTHORIZATION, "Bearer your-account-token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(())
        .unwrap();
    let error = ApiError::new(ErrorCode::ModelNotValid).with_field_error(
        FieldError::new("page_size", "not_valid")
            .with_message("page_size: The value 'X' is not valid for 'page_size'."),
    );
    let response = ErrorFormat::for_request(&request).render(&Coded::new(), &error);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        body_json(&response),
        json!({"code":6,"message":"Model not valid","errors":["page_size: The value 'X' is not valid for 'page_size'."]})
    );
}

#[test]
fn seed_bulk_item_shapes_come_out_as_universal_errors_with_index() {
    let error = ApiError::new(ErrorCode::ValidationErrors)
        .with_index(2)
        .with_field_error(FieldError::new("email", "must_be_unique"));
    let response = ErrorFormat::http().render(&Bulk, &error);
    assert_eq!(
        body_json(&response),
        json!({"error":"validation_errors","_idx":2,"validation_errors":[{"field":"email","error":"must_be_unique"}]})
    );
}

#[test]
fn every_table_code_renders_its_status_and_code() {
    let table: [(ErrorCode, u16, &str, u8); 23] = [
        (ErrorCode::Unauthorized, 401, "unauthorized", 4),
        (ErrorCode::Forbidden, 403, "forbidden", 3),
        (ErrorCode::TooManyItems, 400, "too_many_items", 6),
        (ErrorCode::ServerError, 500, "server_error", 1),
        (ErrorCode::NotFound, 404, "not_found", 10),
        (ErrorCode::MethodNotAllowed, 405, "method_not_allowed", 8),
        (ErrorCode::NotAcceptable, 406, "not_acceptable", 8),
        (ErrorCode::RequestTimeout, 408, "request_timeout", 2),
        (ErrorCode::PayloadTooLarge, 413, "payload_too_large", 8),
        (
            ErrorCode::UnsupportedMediaType,
            415,
            "unsupported_media_type",
            8,
        ),
        (ErrorCode::InvalidJson, 400, "invalid_json", 6),
        (ErrorCode::ValidationErrors, 400, "validation_errors", 6),
        (ErrorCode::TooManyRequests, 429, "too_many_requests", 2),
        (ErrorCode::ServiceUnavailable, 503, "service_unavailable", 2),
        (ErrorCode::ObjectNotFound, 404, "object_not_found", 10),
        (ErrorCode::ModelNotProvided, 400, "model_not_provided", 5),
        (ErrorCode::ModelNotValid, 400, "model_not_valid", 6),
        (ErrorCode::ValueNotProvided, 400, "value_not_provided", 7),
        (ErrorCode::ValueNotValid, 400, "value_not_valid", 8),
        (ErrorCode::RecordNotProvided, 400, "record_not_provided", 9),
        (ErrorCode::RecordNotFound, 404, "record_not_found", 10),
        (ErrorCode::RecordNotActive, 409, "record_not_active", 11),
        (ErrorCode::RecordNotValid, 422, "record_not_valid", 12),
    ];
    let messages = [
        "Server error",
        "Server not available",
        "Not authorized",
        "Not authenticated",
        "Model not provided",
        "Model not valid",
        "Value not provided",
        "Value not valid",
        "Record not provided",
        "Record not found",
        "Record not active",
        "Record not valid",
    ];
    for (code, status, name, number) in table {
        let error = ApiError::new(code.clone());
        let bulk = ErrorFormat::http().render(&Bulk, &error);
        assert_eq!(bulk.status().as_u16(), status, "{name}");
        let expected = if code == ErrorCode::ValidationErrors {
            json!({"error": name, "validation_errors": []})
        } else {
            json!({"error": name})
        };
        assert_eq!(body_json(&bulk), expected);

        let coded = ErrorFormat::http().render(&Coded::new(), &error);
        assert_eq!(coded.status().as_u16(), status, "{name}");
        let body = body_json(&coded);
        assert_eq!(body["code"], number, "{name}");
        assert_eq!(body["message"], messages[usize::from(number - 1)], "{name}");
        assert!(body["errors"].is_array(), "{name}");

        let problem = ErrorFormat::http().render(&ProblemDetails::new(), &error);
        assert_eq!(problem.status().as_u16(), status);
        assert_eq!(
            problem.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = body_json(&problem);
        assert_eq!(body["status"], status);
        assert_eq!(body["code"], name);
        assert_eq!(body["type"], "about:blank");
    }
}

#[test]
fn head_requests_get_headers_without_a_body() {
    let request = Request::head("/v1/webhooks").body(()).unwrap();
    let response = ErrorFormat::for_request(&request).render(&Bulk, &ApiError::unauthorized());
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "24");
    assert!(response.body().as_bytes().is_empty());
}

#[test]
fn problem_details_are_negotiated_by_accept() {
    let cases = [
        ("application/problem+json", Wire::ProblemDetails),
        (
            "application/json, application/problem+json;q=0.5",
            Wire::ProblemDetails,
        ),
        ("Application/Problem+JSON", Wire::ProblemDetails),
        ("application/problem+json;q=0", Wire::Dialect),
        ("*/*", Wire::Dialect),
        ("application/json", Wire::Dialect),
        ("application/vnd.api+json", Wire::Dialect),
        ("text/html, application/problem+xml", Wire::Dialect),
    ];
    for (accept, wire) in cases {
        let request = Request::get("/")
            .header(header::ACCEPT, accept)
            .body(())
            .unwrap();
        assert_eq!(ErrorFormat::for_request(&request).wire(), wire, "{accept}");
    }
    let request = Request::get("/")
        .header(header::ACCEPT, "application/problem+json")
        .body(())
        .unwrap();
    let response = ErrorFormat::for_request(&request).render(
        &Coded::new(),
        &ApiError::new(ErrorCode::ValidationErrors)
            .with_index(1)
            .with_field_error(
                FieldError::new("email", "required").with_message("email is required"),
            ),
    );
    assert_eq!(
        body_json(&response),
        json!({"type": "about:blank", "title": "Bad Request", "status": 400,
               "detail": "email is required", "code": "validation_errors", "_idx": 1,
               "validation_errors": [{"field": "email", "error": "required"}]})
    );
}

#[test]
fn dialects_recognise_their_own_bodies() {
    let mut json_headers = http::HeaderMap::new();
    json_headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    let format = ErrorFormat::http();
    assert!(Bulk.recognizes(&json_headers, br#"{"error":"forbidden"}"#, &format));
    assert!(!Bulk.recognizes(&json_headers, br#"{"code":3,"message":"x"}"#, &format));
    assert!(!Bulk.recognizes(&http::HeaderMap::new(), br#"{"error":"x"}"#, &format));
    assert!(Coded::new().recognizes(
        &json_headers,
        br#"{"code":3,"message":"Not authorized","errors":[]}"#,
        &format
    ));
    assert!(!Coded::new().recognizes(&json_headers, br#"{"error":"forbidden"}"#, &format));
}

#[test]
fn custom_codes_follow_their_status() {
    let locked = ErrorCode::custom("object_locked", StatusCode::CONFLICT);
    let error = ApiError::new(locked);
    let coded = ErrorFormat::http().render(&Coded::new(), &error);
    assert_eq!(
        body_json(&coded),
        json!({"code": 11, "message": "Record not active", "errors": ["object_locked"]})
    );
    let coded = ErrorFormat::http().render(&Coded::new().with_number("object_locked", 12), &error);
    assert_eq!(body_json(&coded)["code"], 12);
    let bulk = ErrorFormat::http().render(&Bulk, &error);
    assert_eq!(bulk.status(), 409);
    assert_eq!(body_json(&bulk), json!({"error": "object_locked"}));
}

#[test]
fn prefixes_match_whole_segments() {
    let dialect = DialectByPath::new(Bulk).prefix("/v1/customer/", Coded::new());
    let render = |path: &str| {
        let request = Request::get(path).body(()).unwrap();
        body_json(&ErrorFormat::for_request(&request).render(&dialect, &ApiError::forbidden()))
    };
    assert_eq!(render("/v1/customer")["code"], 3);
    assert_eq!(render("/v1/customer/courses?page=1")["code"], 3);
    assert_eq!(render("/v1/customers"), json!({"error": "forbidden"}));
    assert_eq!(render("/"), json!({"error": "forbidden"}));
}

#[test]
fn a_format_built_from_its_wire_answers_like_the_request_one() {
    let dialect = DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new());
    let requests = [
        Request::get("/v1/customer/courses?page=1")
            .body(())
            .unwrap(),
        Request::head("/v1/webhooks").body(()).unwrap(),
        Request::post("/pkg.Svc/Call")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap(),
        Request::get("/v1/customer")
            .header(header::ACCEPT, "text/html, application/problem+json")
            .body(())
            .unwrap(),
    ];
    for request in requests {
        let full = ErrorFormat::for_request(&request);
        let wire = Wire::for_headers(request.headers());
        assert_eq!(wire, full.wire());
        let rebuilt = ErrorFormat::new(
            wire,
            request.method(),
            request.uri().path_and_query().cloned(),
        );
        assert_eq!(rebuilt, full);
        let error = ApiError::server_error();
        let (expected, actual) = (
            full.render(&dialect, &error),
            rebuilt.render(&dialect, &error),
        );
        assert_eq!(actual.status(), expected.status());
        assert_eq!(actual.headers(), expected.headers());
        assert_eq!(actual.body().as_bytes(), expected.body().as_bytes());
    }
    let pathless = ErrorFormat::new(Wire::Dialect, &Method::GET, None);
    assert_eq!(pathless, ErrorFormat::http());
}

#[test]
fn accept_values_without_a_plus_skip_the_parse() {
    for accept in [
        "application/json",
        "*/*",
        "text/html,application/xhtml+xml;q=0.9",
    ] {
        let request = Request::get("/")
            .header(header::ACCEPT, accept)
            .body(())
            .unwrap();
        assert_eq!(
            ErrorFormat::for_request(&request).wire(),
            Wire::Dialect,
            "{accept}"
        );
    }
    let request = Request::get("/")
        .header(header::ACCEPT, "application/json")
        .header(header::ACCEPT, "application/problem+json")
        .body(())
        .unwrap();
    assert_eq!(
        ErrorFormat::for_request(&request).wire(),
        Wire::ProblemDetails,
        "a later Accept header counts too"
    );
}

#[test]
fn formats_keep_the_path_and_the_query() {
    let request = Request::get("/v1/customer/courses?page=1&page_size=X")
        .body(())
        .unwrap();
    let format = ErrorFormat::for_request(&request);
    assert_eq!(format.path(), Some("/v1/customer/courses"));
    assert_eq!(format.query(), Some("page=1&page_size=X"));
    let request = Request::get("/v1/courses").body(()).unwrap();
    assert_eq!(ErrorFormat::for_request(&request).query(), None);
    assert_eq!(ErrorFormat::http().query(), None);
}
