//! Quote and signature stripping: the plain-text body → `text_new`, the part of the
//! message the sender wrote now.
//!
//! Removed:
//! - lines starting with `>` (any depth, anywhere);
//! - everything from the first quote header on: `-----Original Message-----` and its
//!   Russian form, `On <date>, <name> wrote:` (also wrapped over two lines),
//!   `<date>, <name> пишет:` / `написал(а):` (Gmail, Mail.ru, Thunderbird forms),
//!   Yandex's `<date>, "<name>" <address>:`,
//!   and Outlook header blocks (`From: … Sent: … To: … Subject: …`, Russian
//!   `От: … Отправлено: … Кому: … Тема: …`), together with a `____` rule right above;
//! - the signature from a line that is exactly `-- ` or `--` to the end;
//! - "Sent from my iPhone" / "Отправлено с iPhone"-style lines.
//!
//! Sign-off blocks without a delimiter ("С уважением, …") are kept: telling them from
//! content is too error-prone, and the client identifier often lives there.
//!
//! Forwarded mail (`---------- Forwarded message ---------`, `-------- Пересылаемое
//! сообщение --------`, `Begin forwarded message:`): the forwarded part is earlier
//! correspondence and is cut like a quote — unless nothing the sender wrote stands above
//! it. A client who forwards a problem report without a word of their own is asking about
//! that report, so then the forwarded content (without its From/Date/Subject header lines,
//! and itself stripped of quotes) is the new text.

use std::sync::LazyLock;

use regex::Regex;

/// `-----Original Message-----` style separators of replies (cut).
static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[\s*_]*-{2,}\s*(original message|исходное сообщение|оригинальное сообщение)\s*-{2,}[\s*_]*$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Separators that introduce forwarded content.
static FORWARD_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[\s*_]*(-{2,}\s*(forwarded message|пересылаемое сообщение|перенаправленное сообщение|пересланное сообщение|начало пересылаемого сообщения)\s*-{2,}|begin forwarded message:|начало переадресованного сообщения:)[\s*_]*$",
    )
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Line ending an attribution: `… wrote:`, `… пишет:`, `… написал(а):`.
static ATTRIBUTION_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(wrote|writes|пишет|написал|написала|написал\(а\)|написал\(-а\)|schrieb|a écrit)\s*:\s*$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A date, a time or an address on an attribution line.
static ATTRIBUTION_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{1,2}:\d{2}|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\b(19|20)\d{2}\b|@")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A line ending in an address and a colon.
static EMAIL_ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<?[\w.+-]+@[\w.-]+>?\s*:\s*$")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// A date or a time.
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{1,2}:\d{2}|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\b(19|20)\d{2}\b")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// First line of an Outlook header block.
static HEADER_FROM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[\s*>]*(from|от|von|de)\s*:\s*\S")
        .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Other lines of a header block.
static HEADER_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[\s*>]*(sent|date|to|cc|subject|отправлено|дата|кому|копия|тема|gesendet|an|betreff|envoyé|à|objet)\s*:",
    )
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Mobile-client footers.
static SENT_FROM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(sent from my \S.*|sent from (mail|outlook|yahoo|gmail|samsung|my)\b.*|sent via \S.*|get outlook for \S.*|отправлено (с|из) (моего |мобильного |мобильной |приложения |почты |яндекс|iphone|ipad|android|samsung|mail\.ru|outlook|устройства).*|отправлено с помощью .*)$",
    )
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// How a quote header was found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    Reply,
    Forward,
}

/// `text` without quoted earlier correspondence and signature (the `text_new` fact): see
/// the module documentation for what is removed and the rule for forwarded mail. Line
/// ends become `\n`; leading and trailing blank lines are trimmed.
pub fn strip_quoted(text: &str) -> String {
    strip_depth(text, 0)
}

fn strip_depth(text: &str, depth: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let (end, cut) = find_cut(&lines);
    let kept = keep_lines(&lines[..end]);
    if cut == Some(Cut::Forward) && kept.trim().is_empty() && depth < 3 {
        let body = skip_forward_headers(&lines[end + 1..]);
        return strip_depth(&body.join("\n"), depth + 1);
    }
    kept
}

/// Index of the first line that is not the sender's own text, and why.
fn find_cut(lines: &[&str]) -> (usize, Option<Cut>) {
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "--" || trimmed == "-- " || *line == "-- " {
            return (i, None);
        }
        if trimmed.is_empty() || trimmed.starts_with('>') {
            continue;
        }
        if trimmed.contains("--") || trimmed.ends_with(':') {
            if FORWARD_HEADER.is_match(trimmed) {
                return (i, Some(Cut::Forward));
            }
            if ORIGINAL_MESSAGE.is_match(trimmed) {
                return (i, Some(Cut::Reply));
            }
        }
        if ATTRIBUTION_END.is_match(trimmed) {
            // Wrapped: "On Tue, 24 Nov 2026 at 10:00, Ivan Petrov <" / "ivan@x> wrote:".
            let prev = i.checked_sub(1).map_or("", |p| lines[p].trim());
            let wrapped = !prev.is_empty()
                && prev.len() < 120
                && (prev.starts_with("On ") || (DATE.is_match(prev) && !DATE.is_match(trimmed)));
            if wrapped && (ATTRIBUTION_CONTEXT.is_match(trimmed) || DATE.is_match(prev)) {
                return (i - 1, Some(Cut::Reply));
            }
            if ATTRIBUTION_CONTEXT.is_match(trimmed) {
                return (i, Some(Cut::Reply));
            }
        }
        // Yandex: `24.11.2026, 10:15, "Иван" <ivan@example.ru>:`.
        if trimmed.ends_with(':') && EMAIL_ATTRIBUTION.is_match(trimmed) && DATE.is_match(trimmed) {
            return (i, Some(Cut::Reply));
        }
        if HEADER_FROM.is_match(trimmed) && is_header_block(&lines[i + 1..]) {
            let start = match i.checked_sub(1) {
                Some(p) if is_rule(lines[p]) => p,
                _ => i,
            };
            return (start, Some(Cut::Reply));
        }
    }
    (lines.len(), None)
}

/// Whether the lines after a `From:` line carry at least two header fields.
fn is_header_block(after: &[&str]) -> bool {
    after
        .iter()
        .take(6)
        .filter(|l| HEADER_FIELD.is_match(l))
        .count()
        >= 2
}

/// A horizontal rule such as Outlook's `________________________________`.
fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 8 && t.chars().all(|c| c == '_' || c == '-' || c == '=')
}

/// The sender's lines: without `>` quotes and mobile footers, trimmed of blank lines.
fn keep_lines(lines: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    for line in lines {
        let line = line.trim_end_matches('\r');
        if line.trim_start().starts_with('>') || SENT_FROM.is_match(line) {
            continue;
        }
        out.push(line);
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    let first = out
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(out.len());
    out[first..].join("\n")
}

/// Forwarded content without its leading header lines (From, Date, Subject, To, Cc).
fn skip_forward_headers<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || HEADER_FROM.is_match(line) || HEADER_FIELD.is_match(line) {
            i += 1;
        } else {
            break;
        }
    }
    lines[i..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_lines_are_removed() {
        let text = "Проблема осталась.\n> Попробуйте перезагрузить\n>> приставку\nКлиент MI-10234";
        assert_eq!(strip_quoted(text), "Проблема осталась.\nКлиент MI-10234");
    }

    #[test]
    fn outlook_original_message_is_cut() {
        let text = "The box still reboots.\r\n\r\n-----Original Message-----\r\nFrom: Support\r\nSent: Monday\r\n\r\nPlease try again.";
        assert_eq!(strip_quoted(text), "The box still reboots.");
    }

    #[test]
    fn english_attribution_is_cut_even_when_wrapped() {
        let text = "Thanks, it works now.\n\nOn Tue, Nov 24, 2026 at 10:00 AM Support Team <\nsupport@vendor.example> wrote:\n\nPlease update the firmware.";
        assert_eq!(strip_quoted(text), "Thanks, it works now.");
        let one_line = "Still broken.\nOn 24.11.2026 10:00, Support wrote:\nTry again";
        assert_eq!(strip_quoted(one_line), "Still broken.");
    }

    #[test]
    fn russian_attributions_are_cut() {
        let gmail = "Логи приложил.\n\nвт, 24 нояб. 2026 г. в 10:00, Иван <ivan@tv-op.ru> написал:\nПришлите логи.";
        assert_eq!(strip_quoted(gmail), "Логи приложил.");
        let yandex = "Не помогло.\n\n24.11.2026, 10:15, \"Поддержка\" <support@vendor.example>:\nСделайте сброс.";
        assert_eq!(strip_quoted(yandex), "Не помогло.");
        let mail_ru = "Не помогло.\n\nПонедельник, 23 ноября 2026, 18:00 +03:00 от Поддержка:\n24.11.2026, 10:15, Поддержка пишет:\nСделайте сброс.";
        assert_eq!(
            strip_quoted(mail_ru),
            "Не помогло.\n\nПонедельник, 23 ноября 2026, 18:00 +03:00 от Поддержка:"
        );
        let thunderbird = "Ок.\n24.11.2026 10:00, Иван Петров написал(а):\n> текст";
        assert_eq!(strip_quoted(thunderbird), "Ок.");
    }

    #[test]
    fn attribution_words_in_prose_are_kept() {
        let text = "Как написал наш инженер:\nпосле обновления пропал звук.";
        assert_eq!(strip_quoted(text), text);
    }

    #[test]
    fn outlook_header_blocks_are_cut() {
        let en = "See the log attached.\n\n________________________________\nFrom: Support <support@vendor.example>\nSent: Tuesday, November 24, 2026 10:00\nTo: Ivan\nSubject: RE: EPG\n\nOld text";
        assert_eq!(strip_quoted(en), "See the log attached.");
        let ru = "Прикладываю лог.\n\nОт: Поддержка <support@vendor.example>\nОтправлено: 24 ноября 2026 г. 10:00\nКому: Иван\nТема: EPG\n\nСтарый текст";
        assert_eq!(strip_quoted(ru), "Прикладываю лог.");
    }

    #[test]
    fn single_from_line_in_prose_is_kept() {
        let text = "From: the STB side everything looks fine.\nBut the stream stops.";
        assert_eq!(strip_quoted(text), text);
    }

    #[test]
    fn signature_after_delimiter_is_removed() {
        let text = "Канал 5 без звука.\n\n-- \nИван Петров\nООО Телеком, MI-10234";
        assert_eq!(strip_quoted(text), "Канал 5 без звука.");
        assert_eq!(strip_quoted("No sound.\n--\nIvan"), "No sound.");
    }

    #[test]
    fn sign_off_without_delimiter_is_kept() {
        let text = "Не работает EPG.\n\nС уважением,\nИван, MI-10234";
        assert_eq!(strip_quoted(text), text);
    }

    #[test]
    fn mobile_footers_are_removed() {
        assert_eq!(
            strip_quoted("Нет звука на HDMI.\n\nОтправлено с iPhone"),
            "Нет звука на HDMI."
        );
        assert_eq!(
            strip_quoted("No picture.\n\nSent from my iPhone\n"),
            "No picture."
        );
    }

    #[test]
    fn forward_below_own_text_is_cut() {
        let text = "Посмотрите, пожалуйста, жалобу абонента.\n\n-------- Пересылаемое сообщение --------\nОт: Абонент <a@b.ru>\nТема: нет каналов\n\nНе показывают каналы.";
        assert_eq!(
            strip_quoted(text),
            "Посмотрите, пожалуйста, жалобу абонента."
        );
    }

    #[test]
    fn bare_forward_keeps_forwarded_content() {
        let text = "\n---------- Forwarded message ---------\nFrom: Operator <noc@tv-op.example>\nDate: Tue, Nov 24, 2026\nSubject: EPG empty\nTo: <support@vendor.example>\n\nEPG is empty on all channels since 09:00.\nClient MI-10234\n\nOn Mon, Nov 23, 2026 at 9:00 Bob <bob@x.example> wrote:\n> old";
        assert_eq!(
            strip_quoted(text),
            "EPG is empty on all channels since 09:00.\nClient MI-10234"
        );
    }

    #[test]
    fn text_without_quotes_is_unchanged_but_trimmed() {
        assert_eq!(
            strip_quoted("\n\nHello,\n\nno sound on HDMI.\n\n\n"),
            "Hello,\n\nno sound on HDMI."
        );
        assert_eq!(strip_quoted(""), "");
    }
}
