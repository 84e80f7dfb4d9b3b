//! Language by script: `&str` → `"ru"` or `"en"`, for the `lang` fact and the choice of
//! reply templates.

/// Counts of Cyrillic and Latin letters in `text`, as `(cyrillic, latin)`.
pub fn letters(text: &str) -> (usize, usize) {
    let (mut cyrillic, mut latin) = (0usize, 0usize);
    for c in text.chars() {
        if c.is_ascii() {
            latin += usize::from(c.is_ascii_alphabetic());
        } else if ('\u{0400}'..='\u{04FF}').contains(&c) {
            cyrillic += usize::from(!('\u{0482}'..='\u{0489}').contains(&c));
        } else if ('\u{00C0}'..='\u{024F}').contains(&c) && c.is_alphabetic() {
            latin += 1;
        }
    }
    (cyrillic, latin)
}

/// `"ru"` when Cyrillic letters are at least 30% of the letters of `text`, else `"en"`
/// (also for text without letters): Russian mail quotes English identifiers and logs,
/// so a minority of Cyrillic already means a Russian-speaking client.
pub fn detect_lang(text: &str) -> &'static str {
    let (cyrillic, latin) = letters(text);
    if cyrillic > 0 && cyrillic * 10 >= (cyrillic + latin) * 3 {
        "ru"
    } else {
        "en"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_text_is_ru() {
        assert_eq!(
            detect_lang("Добрый день! Приставка не показывает EPG после обновления."),
            "ru"
        );
    }

    #[test]
    fn english_text_is_en() {
        assert_eq!(
            detect_lang("Hello, the set-top box shows a black screen on channel 5."),
            "en"
        );
    }

    #[test]
    fn russian_text_with_a_pasted_english_log_is_still_ru() {
        let text = "Падает плеер, лог ниже:\nE/MediaPlayer: error (1, -1004)\nW/Player: timeout";
        assert_eq!(detect_lang(text), "ru");
    }

    #[test]
    fn no_letters_is_en() {
        assert_eq!(detect_lang("12345 !!! 🙂"), "en");
        assert_eq!(detect_lang(""), "en");
    }

    #[test]
    fn letters_counts_both_scripts() {
        assert_eq!(letters("abc где 12 é"), (3, 4));
    }
}
