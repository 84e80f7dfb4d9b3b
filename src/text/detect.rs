//! Content checks on message text: `&str` → `bool` — pasted log lines
//! ([`has_pasted_log`], for `incomplete_bug_report`), text decoded with the wrong charset
//! ([`is_mojibake`]) and whether anything readable is there at all
//! ([`has_meaningful_text`], for `unreadable`).

use std::sync::LazyLock;

use regex::Regex;

use super::letters::is_letter;

/// One line of a log record or stack trace (see [`has_pasted_log`]).
static LOG_LINE: LazyLock<Regex> = LazyLock::new(|| {
    regex::RegexBuilder::new(concat!(
        // A timestamp opening the line: ISO, dd.mm.yyyy, mm/dd/yyyy, syslog, logcat,
        // bare hh:mm:ss, dmesg uptime.
        r"^[ \t]*[\[(<]?[ \t]*(?:[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}[ T][0-9]{1,2}:[0-9]{2}|[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{2,4}[ ,T]+[0-9]{1,2}:[0-9]{2}",
        // Apache error log: [Mon Nov 23 10:15:44.219937 2026]; journald with Russian months.
        r"|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[ \t]+(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[ \t]+[0-9]{1,2}[ \t]+[0-9]{1,2}:[0-9]{2}:[0-9]{2}",
        r"|(?:янв|фев|мар|апр|ма[йя]|июн|июл|авг|сен|окт|ноя|дек)[а-я]*\.?[ \t]+[0-9]{1,2}[ \t]+[0-9]{1,2}:[0-9]{2}:[0-9]{2}",
        r"|[0-9]{1,2}/[0-9]{1,2}/[0-9]{2,4}[ ,]+[0-9]{1,2}:[0-9]{2}:[0-9]{2}",
        r"|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*[ \t]+[0-9]{1,2},?[ \t]+(?:[0-9]{4}[ \t]+)?[0-9]{1,2}:[0-9]{2}:[0-9]{2}",
        r"|[0-9]{2}-[0-9]{2}[ \t]+[0-9]{2}:[0-9]{2}:[0-9]{2}|[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]{1,6})?(?:[^0-9]|$)|[0-9]+\.[0-9]{3,6}[ \t]*\])",
        // A log level in brackets anywhere, or opening the line with a delimiter.
        r"|[\[<][ \t]*(?i:ERROR|ERR|WARN|WARNING|INFO|DEBUG|FATAL|TRACE|CRIT|CRITICAL|SEVERE|NOTICE|ALERT|EMERG)[ \t]*[\]>]",
        // Apache/nginx access log: … [18/Nov/2026:09:41:07 +1100] "GET /x HTTP/1.1" 502 …
        r"|\[[0-9]{1,2}/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2}",
        // Apache error log module:level, e.g. [proxy:error].
        r"|\[[a-z_]+:(?:error|warn|notice|info|debug|crit|alert|emerg)\]",
        // JSON lines: an object on one line with at least one "key": value pair.
        r#"|^[ \t]*\{[ \t]*"[^"]+"[ \t]*:.*\}[ \t]*,?[ \t]*$"#,
        // HTTP exchanges: status lines, request lines (curl -v, browser consoles, access logs).
        r"|^[ \t]*[<>]?[ \t]*HTTP/[0-9.]+[ \t]+[0-9]{3}(?:[^0-9]|$)",
        r"|^[ \t]*[<>]?[ \t]*(?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS)[ \t]+(?:/|https?://)\S*",
        r"|^[ \t]*(?:ERROR|WARN|WARNING|INFO|DEBUG|FATAL|TRACE|CRITICAL|SEVERE)[ \t]*[:|\]-]",
        r"|(?:^|[^A-Za-z])level=(?:error|warn|warning|info|debug|fatal|trace)(?:[^a-z]|$)",
        // Android logcat: E/MediaPlayer( 1234): …
        r"|^[ \t]*[VDIWEF]/[0-9A-Za-z_.$-]+[ \t]*\([ \t]*[0-9]+[ \t]*\)[ \t]*:",
        // Java / .NET / JavaScript stack frames.
        r"|^[ \t]*at[ \t]+[0-9A-Za-z_$<>]+(?:\.[0-9A-Za-z_$<>`]+)+\(",
        r"|^[ \t]*at[ \t]+.*\(.*:[0-9]+:[0-9]+\)[ \t]*$|^[ \t]*at[ \t]+\S+:[0-9]+:[0-9]+[ \t]*$",
        // Python frames and headers.
        r#"|^[ \t]*File[ \t]+"[^"]+",[ \t]+line[ \t]+[0-9]+|Traceback \(most recent call last\)"#,
        // Exception headers.
        r#"|Exception in thread[ \t]+""#,
        r"|^[ \t]*(?:Caused by:[ \t]*)?(?:[a-z_$][0-9A-Za-z_$]*\.)+[A-Z][0-9A-Za-z_$]*(?:Exception|Error)(?:[^0-9A-Za-z_]|$)",
        r"|^[ \t]*[A-Z][0-9A-Za-z_.]*(?:Exception|Error):[ \t]",
        r"|^[ \t]*goroutine [0-9]+ \[|^[ \t]*\.\.\. [0-9]+ more[ \t]*$|^[ \t]*--- End of (?:inner exception )?stack trace",
    ))
    .build()
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Whether the text contains pasted log lines: at least 2 lines that look like log
/// records — opened by a timestamp (`2026-11-24 10:15:03`, `24.11.2026 10:15`,
/// `Nov 24 10:15:03`, `[10:15:03.123]`), carrying a log level (`[ERROR]`, `WARN:`,
/// `level=error`, logcat `E/Tag(123):`), or stack-trace lines (Java/.NET/JS `at …`
/// frames, Python `File "x.py", line 3`, `Traceback (most recent call last):`,
/// `Exception in thread`, `java.lang.X Exception`), so a header plus one frame counts.
///
/// One line is enough when it is a whole log record: a timestamp, then a process tag
/// (`sc-transcoder[774]:`) or a log level word, then a message (see [`is_log_record`]);
/// a date in a sentence is not.
pub fn has_pasted_log(text: &str) -> bool {
    let mut lines = 0;
    for line in text.lines() {
        if line.len() >= 6 && LOG_LINE.is_match(line) {
            lines += 1;
            if lines >= 2 || is_log_record(line) {
                return true;
            }
        }
    }
    false
}

/// A whole log record on one line: opened by a timestamp and carrying a process tag
/// (`host prog[123]:`) or a level word (`ERROR`, `WARN`, `[error]`, `level=warn`,
/// `"level":"warn"`), with at least 30 characters in all; or an access-log line.
static LOG_RECORD: LazyLock<Regex> = LazyLock::new(|| {
    regex::RegexBuilder::new(concat!(
        r"^[ \t]*[\[(<]?[ \t]*(?:[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}[ T][0-9]{1,2}:[0-9]{2}",
        r"|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[ \t]+[A-Z][a-z]{2}[ \t]+[0-9]{1,2}[ \t]+[0-9]{1,2}:[0-9]{2}:[0-9]{2}",
        r"|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[ \t]+[0-9]{1,2}[ \t]+[0-9]{1,2}:[0-9]{2}:[0-9]{2}",
        r"|(?:янв|фев|мар|апр|ма[йя]|июн|июл|авг|сен|окт|ноя|дек)[а-я]*\.?[ \t]+[0-9]{1,2}[ \t]+[0-9]{1,2}:[0-9]{2}:[0-9]{2}",
        r"|[0-9]{1,2}:[0-9]{2}:[0-9]{2}[.,][0-9]{1,6})",
        r".*(?:[A-Za-z0-9_.-]+\[[0-9]+\]:|(?:^|[^A-Za-z])(?:ERROR|ERR|WARN|WARNING|INFO|DEBUG|FATAL|TRACE|CRIT|CRITICAL|NOTICE)(?:[^A-Za-z]|$)",
        r#"|\[(?:[a-z_]+:)?(?:error|warn|warning|notice|info|debug|crit|alert|emerg)\]|level=[a-z]+|"(?:level|severity|lvl)"[ \t]*:)"#,
        r"|\[[0-9]{1,2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2}[^\]]*\][ \t]+\x22[A-Z]+[ \t]",
        r#"|^[ \t]*\{.*"(?:ts|time|timestamp|@timestamp|datetime)"[ \t]*:.*"(?:level|severity|lvl|msg|message)"[ \t]*:"#,
    ))
    .build()
    .unwrap_or_else(|e| unreachable!("static regex: {e}"))
});

/// Whether one line is a whole log record (see [`LOG_RECORD`]).
fn is_log_record(line: &str) -> bool {
    line.trim().len() >= 30 && LOG_RECORD.is_match(line)
}

/// Whether a line looks like a log record, a stack frame, a JSON line or an HTTP
/// exchange line (the single-line test of [`has_pasted_log`]).
pub(crate) fn is_log_line(line: &str) -> bool {
    line.len() >= 6 && LOG_LINE.is_match(line)
}

/// Characters of windows-1251 bytes 0x80–0xBF: the second byte of a UTF-8 Cyrillic letter
/// read as windows-1251 (`РџСЂРёРІРµС‚`).
fn is_cp1251_tail(c: char) -> bool {
    matches!(
        c,
        'Ђ' | 'Ѓ'
            | '‚'
            | 'ѓ'
            | '„'
            | '…'
            | '†'
            | '‡'
            | '€'
            | '‰'
            | 'Љ'
            | '‹'
            | 'Њ'
            | 'Ќ'
            | 'Ћ'
            | 'Џ'
            | 'ђ'
            | '‘'
            | '’'
            | '“'
            | '”'
            | '•'
            | '–'
            | '—'
            | '™'
            | 'љ'
            | '›'
            | 'њ'
            | 'ќ'
            | 'ћ'
            | 'џ'
            | '\u{A0}'
            | 'Ў'
            | 'ў'
            | 'Ј'
            | '¤'
            | 'Ґ'
            | '¦'
            | '§'
            | 'Ё'
            | '©'
            | 'Є'
            | '«'
            | '¬'
            | '\u{AD}'
            | '®'
            | 'Ї'
            | '°'
            | '±'
            | 'І'
            | 'і'
            | 'ґ'
            | 'µ'
            | '¶'
            | '·'
            | 'ё'
            | '№'
            | 'є'
            | '»'
            | 'ј'
            | 'Ѕ'
            | 'ѕ'
            | 'ї'
    )
}

/// Characters of bytes 0x80–0xBF in Latin-1 / windows-1252: the continuation byte of a
/// UTF-8 sequence read as Latin-1 (`Ð¿Ñ€Ð¸`, `MÃ¼ller`).
fn is_latin1_tail(c: char) -> bool {
    ('\u{80}'..='\u{BF}').contains(&c)
        || matches!(
            c,
            '€' | '‚'
                | 'ƒ'
                | '„'
                | '…'
                | '†'
                | '‡'
                | 'ˆ'
                | '‰'
                | 'Š'
                | '‹'
                | 'Œ'
                | 'Ž'
                | '‘'
                | '’'
                | '“'
                | '”'
                | '•'
                | '–'
                | '—'
                | '˜'
                | '™'
                | 'š'
                | '›'
                | 'œ'
                | 'ž'
                | 'Ÿ'
        )
}

fn is_cyrillic(c: char) -> bool {
    ('\u{0400}'..='\u{04FF}').contains(&c)
}

/// Per-token observations of [`is_mojibake`].
#[derive(Default)]
struct TokenStats {
    chars: usize,
    letters: usize,
    cyrillic: usize,
    cyrillic_upper: usize,
    latin1_letters: usize,
    broken: usize,
    pairs: usize,
    first_lower_cyrillic: bool,
}

fn token_stats(token: &str) -> TokenStats {
    let mut s = TokenStats::default();
    let mut prev = ' ';
    for c in token.chars() {
        if c.is_ascii() {
            if c.is_ascii_alphabetic() {
                s.letters += 1;
                s.chars += 1;
            }
            prev = c;
            continue;
        }
        if c == '\u{FFFD}' || ('\u{80}'..='\u{9F}').contains(&c) {
            s.broken += 1;
            s.chars += 1;
        } else if is_letter(c) {
            if s.letters == 0 {
                s.first_lower_cyrillic = ('\u{0430}'..='\u{045F}').contains(&c);
            }
            s.letters += 1;
            s.chars += 1;
            if is_cyrillic(c) {
                s.cyrillic += 1;
                s.cyrillic_upper += usize::from(('\u{0400}'..='\u{042F}').contains(&c));
            } else if ('\u{C0}'..='\u{FF}').contains(&c) {
                s.latin1_letters += 1;
            }
        } else if is_cp1251_tail(c) || is_latin1_tail(c) {
            s.chars += 1;
        }
        if (matches!(prev, 'Р' | 'С') && is_cp1251_tail(c))
            || (matches!(prev, 'Ð' | 'Ñ' | 'Ã' | 'Â') && is_latin1_tail(c))
        {
            s.pairs += 1;
        }
        prev = c;
    }
    s
}

/// Whether the text was decoded with the wrong charset: (a) UTF-8 Cyrillic read as
/// windows-1251 (`РџСЂРёРІРµС‚`) or UTF-8 read as Latin-1 (`Ð¿Ñ€Ð¸Ð²ÐµÑ‚`), (b) windows-1251
/// or KOI8-R read as Latin-1 (`Ïðèâåò`: Latin-1 letters make up the words), (c) KOI8-R
/// and windows-1251 confused (case inverted inside Cyrillic words, `пТЙЧЕФ`, or all-caps
/// words whose letters are those the swap produces), (d) U+FFFD replacement characters
/// or C1 control characters. True when at least 3 words of 3+ characters, and at least
/// 40% of them, are affected. Normal Russian, English, mixed technical text with
/// CamelCase identifiers, accented names and emoji are not.
pub fn is_mojibake(text: &str) -> bool {
    if letters_lost(text) {
        return true;
    }
    // Every pattern above needs a character beyond ASCII.
    if text.is_ascii() {
        return false;
    }
    let (mut words, mut affected) = (0usize, 0usize);
    let (mut caps_words, mut caps_letters, mut koi_marks, mut win_marks, mut inverted) =
        (0, 0, 0, 0, 0);
    for token in text.split_whitespace() {
        let token = token.trim_matches(|c: char| c.is_ascii_punctuation());
        let s = token_stats(token);
        if s.chars < 3 {
            continue;
        }
        words += 1;
        let encoding_pairs = s.pairs >= 3 || (s.pairs > 0 && s.pairs * 4 >= s.chars);
        let latin1_word = s.letters >= 3 && s.latin1_letters * 10 >= s.letters * 9;
        if s.broken > 0 || encoding_pairs || latin1_word {
            affected += 1;
            continue;
        }
        if s.cyrillic >= 3 && s.cyrillic == s.letters {
            if s.cyrillic_upper == s.cyrillic {
                caps_words += 1;
                caps_letters += s.cyrillic;
                for c in token.chars() {
                    koi_marks += usize::from(matches!(c, 'Й' | 'Ф' | 'Б'));
                    win_marks += usize::from(matches!(c, 'Ю' | 'Х' | 'Я'));
                }
            } else if s.cyrillic >= 4
                && s.first_lower_cyrillic
                && s.cyrillic_upper == s.cyrillic - 1
            {
                inverted += 1;
            }
        }
    }
    affected += inverted;
    let swapped_letters = caps_letters >= 20
        && (koi_marks * 100 >= caps_letters * 12 || win_marks * 100 >= caps_letters * 12);
    if inverted >= 2 || swapped_letters {
        affected += caps_words;
    }
    affected >= 3 && affected * 10 >= words * 4
}

/// Whether letters were lost in transit: text converted to a charset that lacks them
/// turns each letter into `?` (`?????? ????!`). True when at least 3 words of 2+
/// characters, and at least 40% of all such words, are only question marks.
fn letters_lost(text: &str) -> bool {
    if !text.contains("??") {
        return false;
    }
    let (mut words, mut lost) = (0usize, 0usize);
    for token in text.split_whitespace() {
        let token = token
            .trim_matches(|c: char| matches!(c, ',' | '.' | '!' | ':' | ';' | '"' | '(' | ')'));
        if token.chars().count() < 2 {
            continue;
        }
        words += 1;
        if token.bytes().all(|b| b == b'?') {
            lost += 1;
        }
    }
    lost >= 3 && lost * 10 >= words * 4
}

/// Whether a human could act on the text: at least 2 words of 2+ letters that are not
/// all the same word, and the text is not mojibake.
pub fn has_meaningful_text(text: &str) -> bool {
    let mut first: Option<String> = None;
    let mut distinct = false;
    for word in text.split(|c: char| !is_letter(c)) {
        if word.chars().count() < 2 {
            continue;
        }
        match &first {
            None => first = Some(word.to_lowercase()),
            Some(f) => {
                if *f != word.to_lowercase() {
                    distinct = true;
                    break;
                }
            }
        }
    }
    distinct && !is_mojibake(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows-1251 / KOI8-R / Latin-1 decoders for building realistic mojibake.
    fn cp1251(byte: u8) -> char {
        const HIGH: &str =
            "ЂЃ‚ѓ„…†‡€‰Љ‹ЊЌЋЏђ‘’“”•–—\u{98}™љ›њќћџ\u{A0}ЎўЈ¤Ґ¦§Ё©Є«¬\u{AD}®Ї°±Ііґµ¶·ё№є»јЅѕї";
        match byte {
            0..=0x7F => byte as char,
            0x80..=0xBF => HIGH.chars().nth(usize::from(byte - 0x80)).unwrap(),
            _ => char::from_u32(0x0410 + u32::from(byte - 0xC0)).unwrap(),
        }
    }

    fn to_cp1251_bytes(s: &str) -> Vec<u8> {
        s.chars()
            .map(|c| match c {
                'А'..='я' => (u32::from(c) - 0x0410 + 0xC0) as u8,
                'ё' => 0xB8,
                'Ё' => 0xA8,
                _ => c as u8,
            })
            .collect()
    }

    fn to_koi8r_bytes(s: &str) -> Vec<u8> {
        const LOWER: &str = "юабцдефгхийклмнопярстужвьызшэщчъ";
        s.chars()
            .map(|c| {
                if let Some(i) = LOWER.chars().position(|l| l == c) {
                    0xC0 + i as u8
                } else if let Some(i) = LOWER
                    .chars()
                    .position(|l| l.to_uppercase().next() == Some(c))
                {
                    0xE0 + i as u8
                } else {
                    c as u8
                }
            })
            .collect()
    }

    const RU: &str = "Добрый день. После обновления прошивки приставка перестала показывать \
        телепрограмму на всех каналах, перезагрузка не помогает. Просим проверить сервер.";

    #[test]
    fn utf8_read_as_cp1251_is_mojibake() {
        let garbled: String = RU.as_bytes().iter().map(|&b| cp1251(b)).collect();
        assert!(garbled.contains("РџРѕСЃР»Рµ"), "{garbled}");
        assert!(is_mojibake(&garbled));
    }

    #[test]
    fn utf8_read_as_latin1_is_mojibake() {
        let garbled: String = RU.as_bytes().iter().map(|&b| b as char).collect();
        assert!(is_mojibake(&garbled));
    }

    #[test]
    fn cp1251_read_as_latin1_is_mojibake() {
        let garbled: String = to_cp1251_bytes(RU).iter().map(|&b| b as char).collect();
        assert!(garbled.starts_with("Äîáðûé"), "{garbled}");
        assert!(is_mojibake(&garbled));
    }

    #[test]
    fn koi8_read_as_cp1251_is_mojibake() {
        let garbled: String = to_koi8r_bytes(RU).iter().map(|&b| cp1251(b)).collect();
        assert!(garbled.starts_with("дПВТЩК"), "{garbled}");
        assert!(is_mojibake(&garbled));
    }

    #[test]
    fn koi8_read_as_cp1251_without_capitals_is_mojibake() {
        let lower = RU.to_lowercase();
        let garbled: String = to_koi8r_bytes(&lower).iter().map(|&b| cp1251(b)).collect();
        assert!(is_mojibake(&garbled), "{garbled}");
    }

    #[test]
    fn replacement_characters_are_mojibake() {
        assert!(is_mojibake("��������� ����, ��������� �� �������� ���"));
    }

    #[test]
    fn letters_lost_to_question_marks_are_mojibake() {
        assert!(is_mojibake(
            "?????? ????! ??????????, ??? ?? MAG-524 ???????? UTC+3.\n???????!\n?????"
        ));
        assert!(!is_mojibake(
            "Why? What?? Is it the box or the portal??? MAG-524 works."
        ));
        assert!(!is_mojibake("Does it work??"));
    }

    #[test]
    fn normal_texts_are_not_mojibake() {
        assert!(!is_mojibake(RU));
        assert!(!is_mojibake(
            "Hello, after the firmware update the STB shows a black screen on HDMI."
        ));
        assert!(!is_mojibake(
            "MediaPlayer выдаёт HTTPError 404 на IPTV-потоке, EPG пустой, TvInputService падает."
        ));
        assert!(!is_mojibake(
            "Kontakt: Jürgen Müller, François Lefèvre, Søren Ærø — déjà vu, été, créé."
        ));
        assert!(!is_mojibake("Всё сломалось 😡😡😡 помогите 🙏 канал 5 🔥"));
        assert!(!is_mojibake(
            "ПРИСТАВКА НЕ ПОКАЗЫВАЕТ ТЕЛЕПРОГРАММУ ПОСЛЕ ОБНОВЛЕНИЯ ПРОШИВКИ, СРОЧНО РЕШИТЕ ВОПРОС"
        ));
        assert!(!is_mojibake(
            "Мощность 10 кВт, ток 5 мА, ООО «РОСТЕЛЕКОМ», СССР"
        ));
    }

    #[test]
    fn a_few_broken_words_in_a_long_text_are_not_mojibake() {
        let text = format!("{RU} {RU} Цитата: Ð¿Ñ€Ð¸Ð²ÐµÑ‚ Ð¼Ð¸Ñ€");
        assert!(!is_mojibake(&text));
    }

    #[test]
    fn pasted_logs_are_found() {
        let syslog = "Вот лог:\n2026-11-24 10:15:03 ERROR Player: stream timeout\n2026-11-24 10:15:04 WARN retry 1";
        assert!(has_pasted_log(syslog));
        assert!(has_pasted_log(
            "Nov 24 10:15:03 stb01 mw[123]: EPG fetch failed\nNov 24 10:15:09 stb01 mw[123]: retry"
        ));
        assert!(has_pasted_log(
            "[10:15:03.123] decoder init\n[10:15:03.456] decoder failed"
        ));
        assert!(has_pasted_log(
            "24.11.2026 10:15 пропал сигнал\n24.11.2026 10:17 сигнал восстановился"
        ));
        assert!(has_pasted_log(
            "[ERROR] cannot open stream\n[INFO] fallback to HLS"
        ));
        assert!(has_pasted_log(
            "E/MediaPlayer( 1234): error (1, -1004)\nW/AudioTrack( 1234): underrun"
        ));
    }

    #[test]
    fn common_log_formats_are_found() {
        // One whole record is enough.
        assert!(has_pasted_log(
            "Вход транскодера:\n\nDec  2 02:03:07 tr-arh-01 sc-transcoder[774]: WARN input udp://239.1.10.1:1234: no data"
        ));
        assert!(has_pasted_log(
            "2026-11-27T19:32:04+10:00 mcproxy-sc01 mitv-mcproxy[901]: ERROR igmp: socket send failed"
        ));
        assert!(has_pasted_log(
            "ноя 29 13:02:44 epg01 sc-epg-exporter[9921]: panic: runtime error"
        ));
        assert!(has_pasted_log(
            "2026/11/25 20:41:13 [error] 1732#1732: *88112093 upstream prematurely closed connection"
        ));
        assert!(has_pasted_log(
            "203.0.113.57 - - [18/Nov/2026:09:41:07 +1100] \"GET /portal/api/v2/epg?ch=105 HTTP/1.1\" 502 157 \"-\""
        ));
        assert!(has_pasted_log(
            "[Mon Nov 23 10:15:44.219937 2026] [proxy:error] [pid 18812:tid 140233] AH00957: attempt to connect failed"
        ));
        assert!(has_pasted_log(
            r#"{"ts":"2026-11-21T22:14:03.118Z","level":"warn","edge":"syd-edge-02","status":503}"#
        ));
        // HTTP exchanges and JSON answers, two lines.
        assert!(has_pasted_log(
            "GET /api/v3/vod/search?q=kino -> 200\nGET /api/v3/vod/search?q=x -> 200"
        ));
        assert!(has_pasted_log(
            "HTTP/1.1 401 Unauthorized\nServer: nginx\n\n{\"code\":401,\"message\":\"x\"}"
        ));
    }

    #[test]
    fn stack_traces_are_found() {
        let java = "Exception in thread \"main\" java.lang.NullPointerException\n\tat com.vendor.epg.Loader.load(Loader.java:42)";
        assert!(has_pasted_log(java));
        let python = "Traceback (most recent call last):\n  File \"epg.py\", line 3, in <module>\nValueError: bad";
        assert!(has_pasted_log(python));
        let dotnet = "System.NullReferenceException: Object reference not set\n   at Vendor.Mw.Epg.Sync(Int32 id) in C:\\src\\Epg.cs:line 42";
        assert!(has_pasted_log(dotnet));
    }

    #[test]
    fn prose_is_not_a_log() {
        assert!(!has_pasted_log(
            "Ошибка появилась 24.11.2026 около 10:15.\nПриставка пишет ERROR 1003 на экране."
        ));
        assert!(!has_pasted_log("The box shows an ERROR message at start.\nWe looked at home (twice) and at the office."));
        assert!(!has_pasted_log("2026-11-24 10:15"));
        assert!(!has_pasted_log(
            "The stream stopped at 10:15:03 and came back.\nSince 2026-11-24 it is worse."
        ));
    }

    #[test]
    fn meaningful_text() {
        assert!(has_meaningful_text("Нет звука на канале 5"));
        assert!(has_meaningful_text("No sound"));
        assert!(!has_meaningful_text(""));
        assert!(!has_meaningful_text("ок"));
        assert!(!has_meaningful_text("asdf asdf ASDF"));
        assert!(!has_meaningful_text("!!! ??? 123 4 5"));
        assert!(!has_meaningful_text(
            "��������� ����, ��������� �� �������� ���"
        ));
        let garbled: String = RU.as_bytes().iter().map(|&b| cp1251(b)).collect();
        assert!(!has_meaningful_text(&garbled));
    }
}
