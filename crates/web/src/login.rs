//! The login page (`/login`): user name and password, the page to come
//! back to (`next`, already checked to be a local path by the server), and
//! the reason a previous attempt was refused, in the shared layout.

use askama::Template;

use crate::{Layout, Page, Viewer};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTemplate<'a> {
    layout: Layout,
    next: &'a str,
    message: Option<&'a str>,
}

/// Renders the login form answering with `status` (401 after wrong
/// credentials, 429 when rate limited, 403 for a cross-site post).
pub fn render(site: &str, next: &str, message: Option<&str>, status: u16) -> Page {
    let viewer = Viewer { accounts: true, user: None, here: String::new() };
    let template = LoginTemplate { layout: Layout::for_viewer("Log in", "login", site, &viewer), next, message };
    Page::from_template(&template, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_form_is_labelled_and_escapes_what_it_echoes() {
        let page = render("Busflow", "/x\"><script>", Some("<b>wrong</b>"), 401);
        assert_eq!(page.status, 401);
        assert_eq!(page.html.matches("<script").count(), 1, "only the layout's script: {}", page.html);
        assert!(!page.html.contains("<b>wrong"), "{}", page.html);
        assert!(page.html.contains("name=\"next\" value=\"/x&#34;&#62;&#60;script&#62;\""), "{}", page.html);
        assert!(page.html.contains("<label for=\"password\">Password</label>"), "{}", page.html);
        assert!(page.html.contains("<p class=\"notice notice-error\" role=\"alert\">"), "{}", page.html);
        assert!(!page.html.contains(">Log in</a>"), "no login link on the login page: {}", page.html);
    }
}
