//! Part of stage 1, parse: HTML body → plain text that keeps the structure the rules
//! look at, and survives broken markup (an unclosed `<head>`, `<title>`, comment,
//! `<style>` or `<script>` never swallows the visible text after it).

/// HTML → plain text that keeps the structure rules look at: line breaks of
/// block elements and `<pre>`, numbered `<ol>` items ("1. …"), bulleted `<ul>`
/// items ("- …") and `<blockquote>` quotes as `> ` lines. mail-parser's converter
/// does the entity decoding and drops head, style and script.
pub fn html_to_text(html: &str) -> String {
    mail_parser::decoders::html::html_to_text(&structure_html(html))
}

fn structure_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + html.len() / 8);
    let mut lists: Vec<Option<u32>> = Vec::new(); // Some(counter) for <ol>, None for <ul>
    let mut quote_depth = 0usize;
    let mut in_pre = false;
    let mut rest = html;
    let newline = |out: &mut String, depth: usize| {
        out.push_str("<br>");
        for _ in 0..depth {
            out.push_str("&gt; ");
        }
    };
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if in_pre || quote_depth > 0 {
            for (i, line) in text.split('\n').enumerate() {
                if i > 0 {
                    if in_pre {
                        newline(&mut out, quote_depth);
                    } else {
                        out.push('\n');
                    }
                }
                out.push_str(line);
            }
        } else {
            out.push_str(text);
        }
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            // A comment is dropped here; one never closed drops only its opener.
            rest = match rest.find("-->") {
                Some(end) => &rest[end + 3..],
                None => &rest[4..],
            };
            continue;
        }
        let Some(gt) = rest.find('>') else {
            out.push_str(rest);
            return out;
        };
        let tag = &rest[..=gt];
        rest = &rest[gt + 1..];
        let inner = tag[1..tag.len() - 1].trim();
        let closing = inner.starts_with('/');
        let name: String = inner
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match (name.as_str(), closing) {
            // Head tags are dropped: an unclosed or misplaced <head> would otherwise
            // hide the whole body; its title is skipped below, style and script by
            // mail-parser.
            ("head", _) | ("title", true) => continue,
            ("title", false) => {
                if let Some(end) = find_ci(rest, "</title") {
                    rest = &rest[end..];
                    rest = rest.find('>').map_or("", |gt| &rest[gt + 1..]);
                }
                continue;
            }
            ("style" | "script" | "template", false)
                if find_ci(rest, &format!("</{name}")).is_none() =>
            {
                // Never closed: mail-parser would drop everything after it.
                continue;
            }
            ("pre", false) => {
                in_pre = true;
                newline(&mut out, quote_depth);
            }
            ("pre", true) => {
                in_pre = false;
                newline(&mut out, quote_depth);
            }
            ("blockquote", false) => {
                quote_depth += 1;
                newline(&mut out, quote_depth);
            }
            ("blockquote", true) => {
                quote_depth = quote_depth.saturating_sub(1);
                newline(&mut out, quote_depth);
            }
            ("ol", false) => lists.push(Some(0)),
            ("ul", false) => lists.push(None),
            ("ol" | "ul", true) => {
                lists.pop();
                newline(&mut out, quote_depth);
            }
            ("li", false) => {
                newline(&mut out, quote_depth);
                match lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        out.push_str(&format!("{n}. "));
                    }
                    _ => out.push_str("- "),
                }
            }
            ("div" | "tr" | "table" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "hr", _)
            | ("p", false) => {
                newline(&mut out, quote_depth);
            }
            ("br", _) | ("p", true) => {
                newline(&mut out, quote_depth);
                continue;
            }
            _ => {}
        }
        if !matches!(name.as_str(), "br") {
            // Keep the tag: mail-parser tracks head/style/script by it.
            out.push_str(tag);
        }
    }
    out.push_str(rest);
    out
}

/// Byte offset of `needle` (ASCII) in `hay`, ignoring ASCII case.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}
