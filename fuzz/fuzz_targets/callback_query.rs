//! `Callback::from_query`: the query Kit sends to the Redirect URI.
//!
//! Beyond "no panic": whatever is accepted is well-formed (no empty code, error or state, no
//! value over the limit), agrees with an independent form decoder (`form_urlencoded`) on every
//! parameter it reads, and survives render → parse unchanged.
#![no_main]

use kit_oauth::core::Callback;
use kit_oauth::core::callback::MAX_CALLBACK_QUERY;
use libfuzzer_sys::fuzz_target;
use url::form_urlencoded;

/// The longest single value the parser accepts (`callback::MAX_VALUE`, private).
const MAX_VALUE: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = Callback::from_query(query) else {
        return;
    };
    assert!(query.len() <= MAX_CALLBACK_QUERY);

    // What an independent decoder reads for the four parameters that matter (first value).
    let first = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let mut rendered = form_urlencoded::Serializer::new(String::new());
    match &parsed {
        Callback::Code { code, state } => {
            let (code, state) = (code.expose_secret(), state.expose_secret());
            assert!(!code.is_empty() && code.len() <= MAX_VALUE);
            assert!(!state.is_empty() && state.len() <= MAX_VALUE);
            assert_eq!(first("code").as_deref(), Some(code));
            assert_eq!(first("state").as_deref(), Some(state));
            assert_eq!(
                first("error"),
                None,
                "code and error together were accepted"
            );
            rendered
                .append_pair("code", code)
                .append_pair("state", state);
        }
        Callback::Error {
            error,
            description,
            state,
        } => {
            assert!(!error.is_empty() && error.len() <= MAX_VALUE);
            assert_eq!(first("error").as_deref(), Some(error.as_str()));
            assert_eq!(first("code"), None, "code and error together were accepted");
            rendered.append_pair("error", error);
            if let Some(description) = description {
                assert!(!description.is_empty() && description.len() <= MAX_VALUE);
                assert_eq!(
                    first("error_description").as_deref(),
                    Some(description.as_str())
                );
                rendered.append_pair("error_description", description);
            }
            if let Some(state) = state {
                let state = state.expose_secret();
                assert!(!state.is_empty() && state.len() <= MAX_VALUE);
                assert_eq!(first("state").as_deref(), Some(state));
                rendered.append_pair("state", state);
            }
        }
    }
    let rendered = rendered.finish();
    // Percent-encoding can triple the length: only short enough renderings must come back.
    if rendered.len() <= MAX_CALLBACK_QUERY {
        assert_eq!(
            Callback::from_query(&rendered).as_ref(),
            Ok(&parsed),
            "render → parse changed the callback: {rendered:?}"
        );
    }
});
