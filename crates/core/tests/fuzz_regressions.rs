//! Inputs the fuzz targets in `fuzz/` found, fed byte for byte to the same entry points.

use kit_oauth_core::{Callback, CallbackError, KitRedirect, RedirectAllowlist, RedirectError};

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

/// `fuzz/ kit_redirect`: a 1,647-byte redirect full of non-ASCII passed the 2,048-byte limit, but
/// parsing percent-encodes it to more than that, so what would be stored (and sent back to
/// the browser) was over the limit and did not re-validate. The limit now applies to the parsed
/// form too. The exact input, as the fuzzer wrote it (in pieces of 48 characters).
#[test]
fn the_length_limit_holds_after_percent_encoding() {
    let pieces: &[&str] = &[
        "https://app.kit.com/hpsapp.kpst\u{a300a}app.:/1127\u{a300a}&0cps",
        "aps/%happs/%h.om/t,0t\u{a300a}://app.kit.com/hpst\u{a300a}app.:/",
        "1127\u{a300a}.0cpsa:/127\u{a300a}app.kyt:/254\u{a300a}ap:/127\u{a300a}app.kyt:/2",
        "54\u{a300a}apps/%happs/%h.om/t,0t\u{a300a}://app.kihttps://app.k",
        "it.com/hpsapp.kyt:/yt\u{a300a}app.:/1127\u{a300a}.0cpsa:/127\u{a300a}app",
        ".kyt:/254:/yt\u{a300a}app.:/1127\u{a300a}.0cpsa:/127\u{a300a}app.kyt:/25",
        "4\u{a300a}://app.kit.com/hpst\u{a300a}app.:/1127\u{a300a}.0cpsa:/127\u{a300a}app",
        ".kyt:/254\u{a300a}apps/%happs/%h.om/t,0t\u{a300a}://app.kipp.kps",
        "t\u{a300a}app.:/1127\u{a300a}&0cpsaps/%happs/%h.om/t,0t\u{a300a}://app.k",
        "it.com/hpst\u{a300a}app.:/1127\u{a300a}.0cpsa:/127\u{a300a}app.kyt:/254\u{a300a}",
        "ap:/127\u{a300a}app.kyt:/254\u{a300a}apps/%happs/%h.om/t,0t\u{a300a}://a",
        "pp.kihttps://app.kit.com/hpsapp.kyt:/yt\u{a300a}app.:/11",
        "27\u{a300a}.0cpsa:/127\u{a300a}app.kyt:/254:/yt\u{a300a}app.:/1127\u{a300a}.0cps",
        "a:/127\u{a300a}app.kyt:/254\u{a300a}://app.kit.com/hpst\u{a300a}app.:/11",
        "27\u{a300a}.0cpsa:/127\u{a300a}app.kyt:/254\u{a300a}apps/%happs/%h.om/t,",
        "0t\u{a300a}://app.kit.com/hpst\u{a300a}app.:/1127\u{a300a}t.com/hpst\u{a300a}app",
        ".:/1127\u{a300a}.0cps6p;t.co+mhp;t.m\u{40a}6p;t.co+mhc\u{458}at\u{40a}6p;t",
        ").co+mhco+mWcosP\u{458}a\u{458}0omPap;t.m\u{40a}8p;t.co+mhco+mWcos",
        "P\u{458}atpcomP'pp.;t.co&+it.co+m\u{40a}6p;t.c.kiP\u{458}atpcomPap",
        ";t.m\u{40a}6.m\u{40a}6p;t.co+mhp;t.m\u{40a}6p;t.co+mhc\u{458}at\u{40a}6p;t).co",
        "+mhco+mWcosP\u{458}a\u{458}0omPap;t.m\u{40a}8p;t.co+mhco+mWcosP\u{458}at",
        "pcomP'pp.;t.co&+it.co+m\u{40a}6p;t.co+mhc\u{458}atpcomPapp34",
        "00ap.kiP\u{458}atpcP\u{458}atpcomPap;t.m\u{40a}6p;.kiP\u{458}atpcomPap;t",
        ".m\u{40a}7p;t.co+mhco+mWcosP\u{458}atpcomP'pp..oi\u{458}atpco(Pap;",
        "t.m\u{40a}6p;t.co+mhc\u{458}at\u{40a}6p;t.co+mhco+mWcosP\u{458}a\u{458}0omPap;",
        "t.m\u{40a}6p;t.o+mhc\u{458}atpcomPapp3400ap.kiP\u{458}atpcP\u{458}atpcom",
        "Pap;t.m\u{40a}6p;.kiP\u{458}atpcomPap;t.m\u{40a}7p;t.co+mhco+mWcos",
        "P\u{458}atpcomP'pp..oi\u{458}atpco(Pap;t.m\u{40a}6p;t.co+mhc\u{458}aa:/1",
        "27\u{a300a}app.kyt:/254\u{a300a}apps/%happt.com/hpst\u{a300a}app.:/1127\u{a300a}",
        ".0cpsa:/127\u{a300a}app.kyt:/254\u{a300a}apps/%happs/%h.om/t,0t/",
        ".p",
    ];
    let raw = pieces.concat();
    assert_eq!(raw.len(), 1647);
    assert!(raw.len() <= KitRedirect::MAX_LEN);
    assert_eq!(
        KitRedirect::parse(&raw, &RedirectAllowlist::default()),
        Err(RedirectError::TooLong {
            max: KitRedirect::MAX_LEN
        })
    );
    // Within the limit once encoded: still accepted, and its rendering re-validates.
    let ok = format!("https://app.kit.com/apps/{}", "\u{e9}".repeat(300));
    let redirect = KitRedirect::parse(&ok, &RedirectAllowlist::default()).unwrap();
    assert_eq!(
        KitRedirect::parse(redirect.as_str(), &RedirectAllowlist::default()),
        Ok(redirect)
    );
}
