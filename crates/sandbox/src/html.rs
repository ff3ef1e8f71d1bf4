//! Server-rendered pages: consent, errors, App Store install, index. Everything user-supplied
//! goes through [`escape`].

use std::fmt::Write as _;

/// HTML-escapes text for element content and double-quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}\
main{border:1px solid #ccc;border-radius:8px;padding:1.5rem}\
button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem;border-radius:6px;border:1px solid #555;cursor:pointer}\
button.allow{background:#1f6f43;color:#fff}button:focus{outline:3px solid #f3a712}\
label{display:block;margin:.75rem 0 .25rem;font-weight:600}input[type=text]{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}\
.error{color:#a00000}";

/// Wraps a page body in a complete, accessible HTML document.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · Kit sandbox</title>\n<style>{STYLE}</style>\n</head>\n\
         <body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title)
    )
}

/// The authorize endpoint's error page (client or redirect URI problems are never redirected).
pub(crate) fn error_page(message: &str) -> String {
    page(
        "Authorization error",
        &format!(
            "<h1>Authorization error</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n\
             <p>The application sent an invalid authorization request, so you were not sent back to it.</p>",
            escape(message)
        ),
    )
}

/// Everything the consent page needs.
pub(crate) struct Consent<'a> {
    pub(crate) action: &'a str,
    pub(crate) app_name: &'a str,
    pub(crate) tenant_name: Option<&'a str>,
    /// Hidden fields carrying the authorization request (name, value).
    pub(crate) hidden: Vec<(&'a str, &'a str)>,
    pub(crate) default_account: &'a str,
    pub(crate) known_accounts: &'a [String],
}

pub(crate) fn consent_page(c: &Consent<'_>) -> String {
    let mut body = String::new();
    let app = escape(c.app_name);
    let _ = writeln!(body, "<h1>Authorize {app}</h1>");
    let _ = writeln!(
        body,
        "<p><strong>{app}</strong> would like to access your Kit account (scope: <code>public</code>).</p>"
    );
    if let Some(t) = c.tenant_name {
        let _ = writeln!(
            body,
            "<p>Tenant: <strong id=\"tenant-name\">{}</strong></p>",
            escape(t)
        );
    }
    let _ = writeln!(
        body,
        "<form method=\"post\" action=\"{}\" aria-label=\"Authorize {app}\">",
        escape(c.action)
    );
    for (name, value) in &c.hidden {
        let _ = writeln!(
            body,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        );
    }
    let _ = writeln!(
        body,
        "<label for=\"account\">Kit account</label>\n\
         <input type=\"text\" id=\"account\" name=\"account\" value=\"{}\" list=\"known-accounts\" \
         autocomplete=\"off\" aria-describedby=\"account-help\">\n\
         <p id=\"account-help\">Pick an account or type a new name; the same name is always the same account.</p>",
        escape(c.default_account)
    );
    let _ = writeln!(body, "<datalist id=\"known-accounts\">");
    for a in c.known_accounts {
        let _ = writeln!(body, "<option value=\"{}\"></option>", escape(a));
    }
    let _ = writeln!(body, "</datalist>");
    let _ = writeln!(
        body,
        "<p><button type=\"submit\" class=\"allow\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></p>\n</form>"
    );
    page(&format!("Authorize {}", c.app_name), &body)
}

/// One row of the App Store "installed" page.
pub(crate) struct InstallRow {
    pub(crate) account: String,
    pub(crate) account_id: u64,
    pub(crate) tenant: Option<String>,
    pub(crate) alive: bool,
    pub(crate) created_at: i64,
}

pub(crate) fn installed_page(
    app_id: &str,
    app_name: &str,
    installed: bool,
    clicks: Option<&crate::model::Install>,
    rows: &[InstallRow],
) -> String {
    let mut body = String::new();
    let heading = if installed {
        "installed"
    } else {
        "not installed"
    };
    let _ = writeln!(
        body,
        "<h1>{} (app {}) is <span id=\"install-status\">{heading}</span></h1>",
        escape(app_name),
        escape(app_id)
    );
    match clicks {
        Some(i) => {
            let _ = writeln!(
                body,
                "<p>Install button clicks seen by the sandbox: <span id=\"install-clicks\">{}</span> \
                 (first at Unix {}, last at Unix {}), <span id=\"install-attributed\">{}</span> \
                 with <code>k_app_id</code>.</p>",
                i.clicks, i.first_at, i.last_at, i.attributed
            );
        }
        None => {
            let _ = writeln!(
                body,
                "<p>Install button clicks seen by the sandbox: <span id=\"install-clicks\">0</span>.</p>"
            );
        }
    }
    if rows.is_empty() {
        let _ = writeln!(body, "<p>No grants for this app yet.</p>");
    } else {
        let _ = writeln!(
            body,
            "<table>\n<caption>Grants</caption>\n<thead><tr><th scope=\"col\">Account</th>\
             <th scope=\"col\">Account id</th><th scope=\"col\">Tenant</th>\
             <th scope=\"col\">State</th><th scope=\"col\">Created (Unix)</th></tr></thead>\n<tbody>"
        );
        for r in rows {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.account),
                r.account_id,
                escape(r.tenant.as_deref().unwrap_or("—")),
                if r.alive { "alive" } else { "revoked" },
                r.created_at
            );
        }
        let _ = writeln!(body, "</tbody>\n</table>");
    }
    page(&format!("{app_name} installed"), &body)
}

pub(crate) fn index_page(app_name: &str, client_id: &str) -> String {
    page(
        "Kit sandbox",
        &format!(
            "<h1>Kit sandbox</h1>\n<p>A local stand-in for Kit's OAuth server and API v4, for app <strong>{}</strong> \
             (client id <code>{}</code>).</p>\n<ul>\n\
             <li><code>GET /v4/oauth/authorize</code>, <code>POST /v4/oauth/token</code>, <code>POST /v4/oauth/revoke</code> (also under <code>/oauth/</code>)</li>\n\
             <li><code>GET /v4/account</code></li>\n<li><code>GET /apps/{{id}}/install</code></li>\n\
             <li>Control API: <code>/_sandbox/stats</code>, <code>/_sandbox/faults</code>, <code>/_sandbox/clock</code>, <code>/_sandbox/grants</code></li>\n</ul>",
            escape(app_name),
            escape(client_id)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
