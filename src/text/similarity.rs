//! Near-duplicate detection: normalised text → [`Fingerprint`] (bottom-k set of word
//! 3-shingle hashes) → Jaccard similarity in `0.0..=1.0`.
//!
//! Fingerprints are small (at most [`Fingerprint::MAX_HASHES`] hashes) so that one is
//! stored with each ticket and a new message is compared with a client's open tickets
//! without re-reading their text. While both texts have fewer distinct shingles than the
//! cap the similarity is the exact Jaccard index; beyond it, the bottom-k estimate.

use super::normalize::normalize;

/// Sorted, deduplicated shingle hashes of a text: the smallest
/// [`Fingerprint::MAX_HASHES`] of them (bottom-k MinHash), so it can be stored per ticket.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint(pub Vec<u64>);

/// Words per shingle.
const SHINGLE: usize = 3;

impl Fingerprint {
    /// How many hashes a fingerprint keeps at most.
    pub const MAX_HASHES: usize = 256;

    /// Fingerprint of `text` (normalised here): hashes of every run of 3 consecutive words,
    /// or of the single words when the text has fewer than 3.
    pub fn of(text: &str) -> Fingerprint {
        let normalized = normalize(text);
        let words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
        let mut hashes: Vec<u64> = if words.len() < SHINGLE {
            words
                .iter()
                .map(|w| hash_words(std::slice::from_ref(w)))
                .collect()
        } else {
            words.windows(SHINGLE).map(hash_words).collect()
        };
        hashes.sort_unstable();
        hashes.dedup();
        hashes.truncate(Self::MAX_HASHES);
        Fingerprint(hashes)
    }

    /// Estimated Jaccard similarity of the two texts' shingle sets: 1.0 when both are
    /// empty, 0.0 when only one is.
    pub fn similarity(&self, other: &Fingerprint) -> f64 {
        let (a, b) = (&self.0, &other.0);
        if a.is_empty() && b.is_empty() {
            return 1.0;
        }
        // Walk the smallest k hashes of the union; count those present in both. A hash
        // among the union's smallest k that is in a set is also among that set's
        // smallest k, so truncated fingerprints give the same answer as full sets.
        let (mut i, mut j, mut union, mut shared) = (0, 0, 0usize, 0usize);
        while union < Self::MAX_HASHES && (i < a.len() || j < b.len()) {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x == y => {
                    shared += 1;
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x < y => i += 1,
                (Some(_), None) => i += 1,
                _ => j += 1,
            }
            union += 1;
        }
        if union == 0 {
            return 0.0;
        }
        shared as f64 / union as f64
    }
}

/// Similarity of two texts, `0.0..=1.0` (see [`Fingerprint::similarity`]); two texts that
/// are both empty after normalisation are identical (1.0).
pub fn similarity(a: &str, b: &str) -> f64 {
    Fingerprint::of(a).similarity(&Fingerprint::of(b))
}

/// FNV-1a over the words with a separator, finished with the SplitMix64 mixer so that the
/// low hashes kept by bottom-k are uniformly spread. Stable across builds and platforms,
/// which matters because fingerprints are stored.
fn hash_words(words: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for word in words {
        for &byte in word.as_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Добрый день! После обновления прошивки до версии 2.3 приставка MAG-420 \
        перестала показывать телепрограмму на всех каналах. Перезагрузка не помогает, \
        сброс к заводским настройкам тоже. Клиент MI-10234, абонентов затронуто около 300.";

    #[test]
    fn identical_texts_are_fully_similar() {
        assert_eq!(similarity(REPORT, REPORT), 1.0);
    }

    #[test]
    fn case_and_punctuation_do_not_matter() {
        assert_eq!(
            similarity(REPORT, &REPORT.to_uppercase().replace(['!', ','], " ")),
            1.0
        );
    }

    #[test]
    fn changed_greeting_stays_near_identical() {
        let edited = REPORT.replace("Добрый день!", "Здравствуйте, повторно пишем!");
        let s = similarity(REPORT, &edited);
        assert!(s > 0.75 && s < 1.0, "{s}");
    }

    #[test]
    fn different_reports_are_dissimilar() {
        let other = "Hello, the EPG import from the XMLTV source fails with a timeout every night \
            since Monday; subscribers see an empty programme guide on channels 1 to 40.";
        assert!(similarity(REPORT, other) < 0.05);
    }

    #[test]
    fn short_texts_compare_words() {
        assert_eq!(similarity("нет звука", "Нет звука!"), 1.0);
        assert!(similarity("нет звука", "нет изображения") > 0.3);
        assert!(similarity("нет звука", "нет изображения") < 0.5);
    }

    #[test]
    fn empty_texts() {
        assert_eq!(similarity("", " ... "), 1.0);
        assert_eq!(similarity("", "текст"), 0.0);
    }

    #[test]
    fn fingerprint_is_sorted_deduplicated_and_capped() {
        let long: String = (0..2000).map(|i| format!("слово{i} ")).collect();
        let fp = Fingerprint::of(&long);
        assert_eq!(fp.0.len(), Fingerprint::MAX_HASHES);
        assert!(fp.0.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Fingerprint::of("один два один два один два").0.len(), 2);
    }

    #[test]
    fn capped_fingerprints_estimate_jaccard() {
        let base: Vec<String> = (0..3000).map(|i| format!("w{i}")).collect();
        let a = base.join(" ");
        let tail: Vec<String> = (3000..4000).map(|i| format!("w{i}")).collect();
        let b = format!("{} {}", base[..2000].join(" "), tail.join(" "));
        // True Jaccard of the shingle sets ≈ 2000 / 4000 = 0.5.
        let s = similarity(&a, &b);
        assert!((0.35..0.65).contains(&s), "{s}");
    }

    #[test]
    fn fingerprint_round_trips_through_serde() {
        let fp = Fingerprint::of(REPORT);
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
    }
}
