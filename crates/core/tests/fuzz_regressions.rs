//! Inputs the fuzz targets in `fuzz/` found, fed byte for byte to the same entry points.

use kit_oauth_core::{Callback, CallbackError};

/// `fuzz/ callback_query`: `%+D` was decoded as `\r` because `u8::from_str_radix` accepts a
/// leading sign, so an invalid percent-encoding passed (and disagreed with every other form
/// decoder). It must be refused like any other.
#[test]
fn percent_sign_plus_hex_is_not_an_escape() {
    let crash: &[u8] = b"error=code=abc%2Fde2B2B%+D&state=s1%20access_denied&error_description=\
        The+resource+owner+or+auts2&exthorira=zi`";
    let query = std::str::from_utf8(crash).unwrap();
    assert!(matches!(
        Callback::from_query(query),
        Err(CallbackError::Malformed("invalid percent-encoding"))
    ));
    for bad in ["code=%+D&state=s", "code=%-1&state=s", "code=a&state=%+0"] {
        assert!(
            matches!(
                Callback::from_query(bad),
                Err(CallbackError::Malformed("invalid percent-encoding"))
            ),
            "{bad:?} must be refused"
        );
    }
    // Real escapes still decode.
    let Callback::Code { code, .. } = Callback::from_query("code=a%0Db&state=s").unwrap() else {
        panic!("expected a code");
    };
    assert_eq!(code.expose_secret(), "a\rb");
}
