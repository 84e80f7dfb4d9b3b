//! Native text mechanics for the policy: message text in, plain values out (normalised
//! text, word-list matches, quote-free text, similarity, language, log/mojibake checks).
//!
//! These are the helpers Rhai scripts call on the hot path (a message's whole policy runs
//! in ≤ 50 µs), so regexes are compiled once ([`std::sync::LazyLock`]), word lists are
//! compiled once into Aho–Corasick DFAs, and every function here is pure.
//!
//! - [`normalize`] — one canonical spelling for matching (case, `ё`, look-alikes, leet,
//!   spaced letters, `*` wildcards, repeated letters); list entries use it too.
//! - [`wordlist`] — `rules/lists/*.txt` → [`WordList`] / [`WordLists`] → [`ListMatch`].
//! - [`quote`] — `text` → `text_new` ([`strip_quoted`]).
//! - [`similarity`] — [`Fingerprint`] and near-duplicate [`similarity()`].
//! - [`lang`] — `"ru"` / `"en"` by script ([`detect_lang`]).
//! - [`detect`] — pasted logs, mojibake, meaningful text.
//! - [`prose`] — the sentences a sender wrote: no data lines, statements and questions.
//! - [`pasted`] — text without pasted code, encoded blocks, logs and links
//!   ([`strip_pasted`]), and whether a word aims at the writer or no one ([`aimed_at_self`]).

pub mod detect;
pub mod lang;
mod letters;
pub mod normalize;
pub mod pasted;
pub mod prose;
pub mod quote;
mod scan;
pub mod similarity;
pub mod wordlist;

pub use detect::{has_meaningful_text, has_pasted_log, is_mojibake};
pub use lang::detect_lang;
pub use normalize::{normalize, tokens};
pub use pasted::{aimed_at_self, strip_pasted};
pub use prose::{prose, questions, statements};
pub use quote::strip_quoted;
pub use similarity::{similarity, Fingerprint};
pub use wordlist::{ListError, ListMatch, WordList, WordLists};

#[cfg(test)]
mod tests {
    //! The shipped lists of `rules/lists/` against ordinary and abusive support mail.

    use super::*;

    const SHIPPED: &[(&str, &str)] = &[
        (
            "auto_reply_subjects",
            include_str!("../../rules/lists/auto_reply_subjects.txt"),
        ),
        (
            "error_words",
            include_str!("../../rules/lists/error_words.txt"),
        ),
        (
            "generic_subject",
            include_str!("../../rules/lists/generic_subject.txt"),
        ),
        ("insults", include_str!("../../rules/lists/insults.txt")),
        ("obscene", include_str!("../../rules/lists/obscene.txt")),
        (
            "out_of_scope",
            include_str!("../../rules/lists/out_of_scope.txt"),
        ),
        (
            "steps_words",
            include_str!("../../rules/lists/steps_words.txt"),
        ),
        (
            "topic_markers",
            include_str!("../../rules/lists/topic_markers.txt"),
        ),
    ];

    fn lists() -> WordLists {
        WordLists::from_sources(SHIPPED).unwrap()
    }

    fn hits(list: &str, text: &str) -> Vec<String> {
        lists()
            .get(list)
            .unwrap()
            .find_all(text)
            .into_iter()
            .map(|m| m.word)
            .collect()
    }

    const ORDINARY_RU: &str = "Добрый день! Клиент MI-10234, ООО «Телеком-Сервис». После обновления \
        middleware до версии 4.2 часть приставок MAG-524 и Kaonmedia перестала получать EPG: \
        программа передач пустая на каналах 1–40, потоки multicast приходят, картинка есть. \
        Абоненты жалуются, что телегид не обновляется после полуночи; учебный стенд ведёт себя так же. \
        Интеграция с биллингом: при списании абонентской платы подписка потребляет лишний запрос к API, \
        и тариф абонента не применяется. Оскорблять никого не хотим, но ситуация неприятная: \
        застрахуйте нас от повторения — подстрахуйте откатом. Скорбь и печаль. Хлебали уже такое. \
        Ребёнок абонента учится в учебной группе, небо голубое, команда потребляет ресурсы. \
        Sherlock (наш мониторинг) показывает пропуски пакетов, CC errors на транспондере 11. \
        Прошивка сборки 2026-11-20, логи приложены. С уважением, Иван Козлов, инженер NOC.";

    const ORDINARY_EN: &str = "Hello support team, our client ID is MI-20456. Since the middleware upgrade \
        the set-top boxes in our Scunthorpe and Penistone head-ends show an empty EPG; the assistant \
        application of the class B subscribers also hangs. The billing integration returns an error \
        when a subscriber buys a package, and the payment gateway times out. Our therapist clinic \
        channel and the cocktail bar promo stream (HLS, 1080p) are fine. Sherlock, our monitoring tool, \
        reports dropped packets; analysis of the assessment shows the stream passes through the \
        transcoder. Please check the documentation of the shitake-free cooking channel, too. \
        Regards, Dick Johnson, NOC engineer, Essex.";

    #[test]
    fn all_shipped_lists_parse() {
        let lists = lists();
        assert_eq!(lists.names().len(), SHIPPED.len());
        for name in lists.names() {
            assert!(!lists.get(&name).unwrap().is_empty(), "{name} is empty");
        }
    }

    #[test]
    fn ordinary_support_text_has_no_abuse() {
        for text in [ORDINARY_RU, ORDINARY_EN] {
            assert_eq!(hits("obscene", text), Vec::<String>::new());
            assert_eq!(hits("insults", text), Vec::<String>::new());
        }
    }

    #[test]
    fn ordinary_support_text_is_in_scope_and_single_topic() {
        for text in [ORDINARY_RU, ORDINARY_EN] {
            assert_eq!(hits("out_of_scope", text), Vec::<String>::new());
            assert_eq!(hits("topic_markers", text), Vec::<String>::new());
            assert_eq!(hits("auto_reply_subjects", text), Vec::<String>::new());
        }
    }

    #[test]
    fn abusive_mail_is_found_in_both_languages() {
        let ru = "Вы там совсем охуели? Третий день нихуя не работает, п*здец. Бл@дь, идиоты, \
            х у й вам а не оплата. ПИЗДEЦ полный, уебки криворукие, сука.";
        let found = hits("obscene", ru);
        for word in [
            "охуели",
            "нихуя",
            "п*здец",
            "бладь",
            "хуй",
            "пиздец",
            "уебки",
            "сука",
        ] {
            assert!(found.iter().any(|w| w == word), "{word} not in {found:?}");
        }
        let insults = hits("insults", ru);
        assert!(insults.iter().any(|w| w == "идиоты"), "{insults:?}");
        assert!(insults.iter().any(|w| w == "криворукие"), "{insults:?}");
        let en =
            "What the f*ck is this sh1t? Your fucking box is crap, you morons, total bullshit, \
            motherfuckers.";
        let found = hits("obscene", en);
        for word in ["f*ck", "shit", "fucking", "bulshit", "motherfuckers"] {
            assert!(found.iter().any(|w| w == word), "{word} not in {found:?}");
        }
        assert_eq!(hits("insults", en), vec!["morons"]);
    }

    #[test]
    fn generic_subjects_are_fully_covered() {
        let generic = lists().get("generic_subject").unwrap().clone();
        for subject in [
            "Вопрос",
            "Срочно! Проблема",
            "Помогите, пожалуйста",
            "Re: Fwd: help needed",
            "URGENT question",
            "Не работает",
            "Ошибка",
            "Need help ASAP",
            "Добрый день! Вопрос по поддержке",
            "support request",
            "Еще один вопрос",
        ] {
            assert!(
                generic.unmatched_words(subject).is_empty(),
                "{subject}: {:?}",
                generic.unmatched_words(subject)
            );
        }
        for subject in [
            "Нет EPG на MAG-524",
            "Пустая телепрограмма",
            "Stream freezes on channel 5",
            "Вопрос по настройке multicast",
            "Problem with HLS playback",
            "Проблема с приставкой",
        ] {
            assert!(!generic.unmatched_words(subject).is_empty(), "{subject}");
        }
    }

    #[test]
    fn out_of_scope_requests_are_found() {
        for text in [
            "Пришлите, пожалуйста, коммерческое предложение на 500 лицензий",
            "Просим выставить счёт на оплату и акт сверки за ноябрь",
            "Please send us a quotation for 200 licenses and the price list",
            "Attached is my CV, I am interested in a job opening",
            "Предлагаем услуги SEO-продвижения вашего сайта",
            "We offer marketing services",
        ] {
            assert!(
                lists().get("out_of_scope").unwrap().is_match(text),
                "{text}"
            );
        }
    }

    #[test]
    fn error_and_steps_words_are_found() {
        let errors = lists().get("error_words").unwrap().clone();
        for text in [
            "Приставка зависает на логотипе",
            "плеер вылетает",
            "канал не воспроизводится",
            "The app crashes on start",
            "video keeps freezing",
            "STB doesn't work",
            "чёрный экран",
        ] {
            assert!(errors.is_match(text), "{text}");
        }
        assert!(!errors.is_match("Подскажите, как настроить multicast на приставке"));
        let steps = lists().get("steps_words").unwrap().clone();
        assert!(steps.is_match("Шаги воспроизведения: 1. включить"));
        assert!(steps.is_match("Steps to reproduce: open the EPG"));
        assert!(steps.is_match("Как воспроизвести: открыть меню"));
    }

    #[test]
    fn auto_reply_subjects_and_topic_markers_are_found() {
        let auto = lists().get("auto_reply_subjects").unwrap().clone();
        for s in [
            "Автоответ: Re: нет звука",
            "Out of Office: EPG",
            "Automatic reply: ticket",
            "Я в отпуске до 30.11",
            "Undeliverable: EPG",
            "Mail delivery failed: returning message to sender",
        ] {
            assert!(auto.is_match(s), "{s}");
        }
        let topics = lists().get("topic_markers").unwrap().clone();
        for s in [
            "И ещё один вопрос: как сменить пароль?",
            "Второй вопрос — по биллингу",
            "Also, unrelated: the remote does not pair",
            "One more question: how do I export logs?",
        ] {
            assert!(topics.is_match(s), "{s}");
        }
    }
}
