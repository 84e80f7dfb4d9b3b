//! Character classes and letter tables behind [`super::normalize`] and
//! [`super::detect`]: `char` → class or folded `char`. Fast paths for ASCII and Cyrillic
//! keep the per-character cost low (the Unicode table look-ups of `char` cost tens of
//! nanoseconds each on the hot path).

/// Zero-width and formatting characters that obfuscators put inside words.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{034F}'
    )
}

pub(crate) fn is_combining(c: char) -> bool {
    ('\u{0300}'..='\u{036F}').contains(&c)
}

pub(crate) fn is_cyrillic(c: char) -> bool {
    ('\u{0400}'..='\u{04FF}').contains(&c)
}

/// `char::is_alphabetic` with fast paths for ASCII and Cyrillic (the Unicode table
/// look-up costs tens of nanoseconds per character on the hot path).
#[inline]
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else if is_cyrillic(c) {
        !('\u{0482}'..='\u{0489}').contains(&c)
    } else {
        c.is_alphabetic()
    }
}

/// A letter or an ASCII digit (other digits are treated as punctuation).
#[inline]
pub(crate) fn is_alnum(c: char) -> bool {
    c.is_ascii_digit() || is_letter(c)
}

/// `char::to_lowercase` with fast paths for ASCII and Cyrillic.
#[inline]
pub(crate) fn lower(c: char) -> char {
    match c {
        _ if c.is_ascii() => c.to_ascii_lowercase(),
        '\u{0410}'..='\u{042F}' => char::from_u32(u32::from(c) + 0x20).unwrap_or(c),
        '\u{0400}'..='\u{040F}' => char::from_u32(u32::from(c) + 0x50).unwrap_or(c),
        '\u{0430}'..='\u{045F}' => c,
        _ => c.to_lowercase().next().unwrap_or(c),
    }
}

/// Symbols that imitate letters when they stand inside a word.
pub(crate) fn is_subst_symbol(c: char) -> bool {
    matches!(c, '@' | '$' | '!')
}

/// Characters that, between single letters, are read as spacing out one word.
pub(crate) fn is_letter_separator(c: char) -> bool {
    matches!(c, '.' | '-' | '_' | '*')
}

pub(crate) fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}')
}

/// Latin letter (as written, case kept) → Cyrillic look-alike, for mostly Cyrillic words.
pub(crate) fn latin_to_cyrillic(c: char) -> Option<char> {
    Some(match c {
        'a' | 'A' => 'а',
        'b' => 'ь',
        'B' => 'в',
        'c' | 'C' => 'с',
        'e' | 'E' => 'е',
        'h' | 'H' => 'н',
        'i' | 'I' => 'и',
        'k' | 'K' => 'к',
        'm' | 'M' => 'м',
        'n' => 'п',
        'o' | 'O' => 'о',
        'p' | 'P' => 'р',
        'r' => 'г',
        't' | 'T' => 'т',
        'u' => 'и',
        'x' | 'X' => 'х',
        'y' | 'Y' => 'у',
        _ => return None,
    })
}

/// Cyrillic letter (lower case) → Latin look-alike, for mostly Latin words.
pub(crate) fn cyrillic_to_latin(c: char) -> Option<char> {
    Some(match c {
        'а' => 'a',
        'в' => 'b',
        'г' => 'r',
        'е' | 'ё' => 'e',
        'и' => 'u',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'п' => 'n',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'х' => 'x',
        'ь' => 'b',
        'і' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        _ => return None,
    })
}

/// Digit or symbol → the Latin letter it imitates inside a Latin word.
pub(crate) fn latin_leet(c: char) -> Option<char> {
    Some(match c {
        '1' | '!' => 'i',
        '3' => 'e',
        '0' => 'o',
        '@' | '4' => 'a',
        '$' | '5' => 's',
        '7' => 't',
        _ => return None,
    })
}

/// Digit or symbol → the Cyrillic letter it imitates inside a Cyrillic word.
pub(crate) fn cyrillic_leet(c: char) -> Option<char> {
    Some(match c {
        '3' => 'з',
        '0' => 'о',
        '6' => 'б',
        '4' => 'ч',
        '9' => 'я',
        '@' => 'а',
        '$' => 'с',
        '!' => 'и',
        _ => return None,
    })
}

/// Lower case with `ё` → `е` and Latin-1 accents dropped.
pub(crate) fn fold_case(c: char) -> char {
    match lower(c) {
        'ё' => 'е',
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => 'a',
        'ç' | 'č' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'ů' => 'u',
        'ý' | 'ÿ' => 'y',
        'š' => 's',
        'ž' => 'z',
        'ř' => 'r',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_letter_class_agrees_with_unicode() {
        for c in ('\u{0}'..='\u{052F}').chain(['€', '😀', '中', '\u{FFFD}']) {
            assert_eq!(
                is_letter(c),
                c.is_alphabetic(),
                "{c:?} U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn fast_lower_agrees_with_unicode() {
        for c in ('\u{0}'..='\u{04FF}').chain(['Ä', 'Ω']) {
            assert_eq!(lower(c), c.to_lowercase().next().unwrap(), "{c:?}");
        }
    }

    #[test]
    fn fold_case_drops_yo_and_accents() {
        assert_eq!(
            ['Ё', 'ё', 'É', 'ü', 'Й'].map(fold_case),
            ['е', 'е', 'e', 'u', 'й']
        );
    }

    #[test]
    fn lookalike_tables_round_trip_on_shared_shapes() {
        for c in ['a', 'c', 'e', 'k', 'm', 'o', 'p', 't', 'x', 'y'] {
            let cyr = latin_to_cyrillic(c).unwrap();
            assert_eq!(cyrillic_to_latin(cyr), Some(c), "{c}");
        }
        assert_eq!(latin_to_cyrillic('B'), Some('в'));
        assert_eq!(latin_to_cyrillic('b'), Some('ь'));
        assert_eq!(latin_to_cyrillic('d'), None);
    }
}
