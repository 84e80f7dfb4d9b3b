//! SLA arithmetic: a contract level's reaction and in-work times, counted
//! round-the-clock or in business hours of a calendar (timezone, working days, hours).
//!
//! Input: the ticket's creation instant and the contract level; output: [`SlaDue`].

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

/// Working days and hours in a timezone.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub tz: TimeZone,
    pub tz_name: String,
    pub days: Vec<Weekday>,
    pub open: Time,
    pub close: Time,
}

/// The times of one contract level.
#[derive(Debug, Clone)]
pub struct LevelSpec {
    pub reaction: Duration,
    pub in_work: Duration,
    pub business_hours: bool,
}

/// Every level, with the calendar business-hours levels count on.
#[derive(Debug, Clone)]
pub struct SlaConfig {
    pub calendar: Calendar,
    pub levels: BTreeMap<String, LevelSpec>,
}

/// When a ticket must be reacted to and taken into work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaDue {
    pub level: String,
    pub reaction_due: Timestamp,
    pub in_work_due: Timestamp,
    /// Reaction time of the level in minutes, for replies ("within 4 business hours").
    pub reaction_minutes: u64,
    pub business_hours: bool,
}

impl Calendar {
    /// Parses `Europe/Moscow`, `["mon",…]`, `09:00-18:00`.
    ///
    /// # Errors
    /// A message naming the bad part.
    pub fn parse(tz: &str, days: &[String], hours: &str) -> Result<Calendar, String> {
        let zone = TimeZone::get(tz).map_err(|e| format!("timezone {tz:?}: {e}"))?;
        let mut wd = Vec::new();
        for d in days {
            wd.push(match d.to_ascii_lowercase().get(..3) {
                Some("mon") => Weekday::Monday,
                Some("tue") => Weekday::Tuesday,
                Some("wed") => Weekday::Wednesday,
                Some("thu") => Weekday::Thursday,
                Some("fri") => Weekday::Friday,
                Some("sat") => Weekday::Saturday,
                Some("sun") => Weekday::Sunday,
                _ => return Err(format!("day {d:?}")),
            });
        }
        if wd.is_empty() {
            return Err("no working days".into());
        }
        let (a, b) = hours
            .split_once('-')
            .ok_or_else(|| format!("hours {hours:?}: use HH:MM-HH:MM"))?;
        let open: Time = a.trim().parse().map_err(|e| format!("hours {a:?}: {e}"))?;
        let close: Time = b.trim().parse().map_err(|e| format!("hours {b:?}: {e}"))?;
        if close <= open {
            return Err(format!("hours {hours:?}: close before open"));
        }
        Ok(Calendar {
            tz: zone,
            tz_name: tz.to_owned(),
            days: wd,
            open,
            close,
        })
    }

    /// `start` plus `amount` of working time.
    pub fn add_business(&self, start: Timestamp, amount: Duration) -> Timestamp {
        let mut left = amount.as_secs() as i64;
        let mut cur = start.to_zoned(self.tz.clone());
        // Bounded: each turn consumes a working day or skips a day; 20 years at most.
        for _ in 0..7400 {
            let date = cur.date();
            if self.days.contains(&date.weekday()) {
                let open = date.to_datetime(self.open).to_zoned(self.tz.clone());
                let close = date.to_datetime(self.close).to_zoned(self.tz.clone());
                if let (Ok(open), Ok(close)) = (open, close) {
                    let from = if cur < open { open } else { cur.clone() };
                    if from < close {
                        let avail = close.timestamp().as_second() - from.timestamp().as_second();
                        if left <= avail {
                            return from.timestamp() + left.seconds();
                        }
                        left -= avail;
                    }
                }
            }
            let next = date
                .tomorrow()
                .ok()
                .and_then(|d| d.to_zoned(self.tz.clone()).ok());
            match next {
                Some(z) => cur = z,
                None => break,
            }
        }
        start
    }
}

impl Calendar {
    /// Working time between `from` and `to` (zero when `to` is not after `from`):
    /// how much of a business-hours timer a pause between them would have used.
    pub fn business_between(&self, from: Timestamp, to: Timestamp) -> Duration {
        if to <= from {
            return Duration::ZERO;
        }
        let mut total: i64 = 0;
        let mut cur = from.to_zoned(self.tz.clone());
        // Bounded like `add_business`: one turn per calendar day, 20 years at most.
        for _ in 0..7400 {
            if cur.timestamp() >= to {
                break;
            }
            let date = cur.date();
            if self.days.contains(&date.weekday()) {
                let open = date.to_datetime(self.open).to_zoned(self.tz.clone());
                let close = date.to_datetime(self.close).to_zoned(self.tz.clone());
                if let (Ok(open), Ok(close)) = (open, close) {
                    let a = cur.timestamp().max(open.timestamp());
                    let b = to.min(close.timestamp());
                    if b > a {
                        total += b.as_second() - a.as_second();
                    }
                }
            }
            match date
                .tomorrow()
                .ok()
                .and_then(|d| d.to_zoned(self.tz.clone()).ok())
            {
                Some(z) => cur = z,
                None => break,
            }
        }
        Duration::from_secs(total.max(0) as u64)
    }
}

impl SlaConfig {
    /// Whether `level` counts business hours (unknown levels count round the clock).
    pub fn business_hours(&self, level: &str) -> bool {
        self.levels.get(level).is_some_and(|l| l.business_hours)
    }

    /// The time a timer of `level` would have run between `from` and `to`.
    pub fn counted_between(&self, level: &str, from: Timestamp, to: Timestamp) -> Duration {
        if self.business_hours(level) {
            self.calendar.business_between(from, to)
        } else if to > from {
            Duration::from_secs((to.as_second() - from.as_second()) as u64)
        } else {
            Duration::ZERO
        }
    }

    /// `due` pushed later by `paused` of the level's counted time.
    pub fn extend(&self, level: &str, due: Timestamp, paused: Duration) -> Timestamp {
        if paused.is_zero() {
            due
        } else if self.business_hours(level) {
            self.calendar.add_business(due, paused)
        } else {
            due + (paused.as_secs() as i64).seconds()
        }
    }

    /// Due times of a ticket created at `start` under `level`; `None` for an unknown level.
    pub fn due(&self, level: &str, start: Timestamp) -> Option<SlaDue> {
        let spec = self.levels.get(level)?;
        let add = |d: Duration| {
            if spec.business_hours {
                self.calendar.add_business(start, d)
            } else {
                start + (d.as_secs() as i64).seconds()
            }
        };
        Some(SlaDue {
            level: level.to_owned(),
            reaction_due: add(spec.reaction),
            in_work_due: add(spec.in_work),
            reaction_minutes: spec.reaction.as_secs() / 60,
            business_hours: spec.business_hours,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal() -> Calendar {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
            .map(String::from)
            .to_vec();
        Calendar::parse("Europe/Moscow", &days, "09:00-18:00").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn within_a_working_day() {
        // Tue 2026-11-24 10:00 MSK = 07:00Z; +4h -> 14:00 MSK = 11:00Z
        let due = cal().add_business(ts("2026-11-24T07:00:00Z"), Duration::from_secs(4 * 3600));
        assert_eq!(due, ts("2026-11-24T11:00:00Z"));
    }

    #[test]
    fn friday_evening_rolls_over_the_weekend() {
        // Fri 2026-11-27 17:00 MSK (14:00Z) + 4h: 1h Friday, 3h Monday from 09:00 -> 12:00 MSK
        let due = cal().add_business(ts("2026-11-27T14:00:00Z"), Duration::from_secs(4 * 3600));
        assert_eq!(due, ts("2026-11-30T09:00:00Z"));
    }

    #[test]
    fn saturday_starts_monday_morning() {
        let due = cal().add_business(ts("2026-11-28T12:00:00Z"), Duration::from_secs(3600));
        assert_eq!(due, ts("2026-11-30T07:00:00Z"));
    }

    #[test]
    fn business_time_between_skips_nights_and_weekends() {
        // Fri 17:00 MSK -> Mon 10:00 MSK: 1h Friday + 1h Monday.
        let c = cal();
        assert_eq!(
            c.business_between(ts("2026-11-27T14:00:00Z"), ts("2026-11-30T07:00:00Z")),
            Duration::from_secs(2 * 3600)
        );
        // Entirely within a weekend: nothing.
        assert_eq!(
            c.business_between(ts("2026-11-28T08:00:00Z"), ts("2026-11-29T20:00:00Z")),
            Duration::ZERO
        );
        // Reversed: nothing.
        assert_eq!(
            c.business_between(ts("2026-11-30T07:00:00Z"), ts("2026-11-27T14:00:00Z")),
            Duration::ZERO
        );
    }

    #[test]
    fn business_hours_follow_the_calendar_timezone() {
        // 09:00-18:00 in New York (UTC-5 in November) is 14:00-23:00Z.
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"]
            .map(String::from)
            .to_vec();
        let ny = Calendar::parse("America/New_York", &days, "09:00-18:00").unwrap();
        // Tue 2026-11-24 12:00Z is 07:00 in New York: counting starts at 14:00Z.
        let due = ny.add_business(ts("2026-11-24T12:00:00Z"), Duration::from_secs(3600));
        assert_eq!(due, ts("2026-11-24T15:00:00Z"));
        // The same instant in Moscow (15:00 MSK) is inside working hours.
        let due = cal().add_business(ts("2026-11-24T12:00:00Z"), Duration::from_secs(3600));
        assert_eq!(due, ts("2026-11-24T13:00:00Z"));
        assert_eq!(
            ny.business_between(ts("2026-11-27T22:00:00Z"), ts("2026-11-30T15:00:00Z")),
            Duration::from_secs(2 * 3600)
        );
    }

    #[test]
    fn round_the_clock_level() {
        let mut levels = BTreeMap::new();
        levels.insert(
            "premium".to_owned(),
            LevelSpec {
                reaction: Duration::from_secs(3600),
                in_work: Duration::from_secs(8 * 3600),
                business_hours: false,
            },
        );
        let sla = SlaConfig {
            calendar: cal(),
            levels,
        };
        let d = sla.due("premium", ts("2026-11-28T23:30:00Z")).unwrap();
        assert_eq!(d.reaction_due, ts("2026-11-29T00:30:00Z"));
        assert_eq!(d.in_work_due, ts("2026-11-29T07:30:00Z"));
        assert!(sla.due("gold", ts("2026-11-28T23:30:00Z")).is_none());
    }
}
