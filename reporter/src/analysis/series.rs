//! A bounded series of values over time: the highest value of each time bucket, the buckets
//! doubling in width whenever the series is full, so that a run of any length keeps at most
//! [`MAX_POINTS`] points and its highest values (the peak) stay in.

/// At most this many points.
pub const MAX_POINTS: usize = 4000;

#[derive(Clone, Debug, Default)]
pub struct Series {
    /// At most this many points (0: [`MAX_POINTS`]).
    pub(crate) capacity: usize,
    /// log2 of the ticks per bucket.
    pub(crate) shift: u32,
    /// (bucket, tick of the highest value, the value), in bucket order.
    pub(crate) points: Vec<(u64, u64, u64)>,
    /// A steps series' ([`Series::steps`]) only: for each point, the event after which its
    /// value was the value (its index in the replay's order, 0 where not given). Kept apart:
    /// the other series, on the path of every event of every report, do without it.
    pub(crate) events: Vec<u64>,
    /// Keep the last value of a tick rather than its highest, while buckets are one tick wide
    /// ([`Series::steps`]).
    pub(crate) steps: bool,
}

impl Series {
    /// A series of at most `points` points (a finer one: the family's combined peak sums the
    /// series of its processes).
    pub fn with_capacity(points: usize) -> Series {
        Series {
            capacity: points.max(2),
            ..Series::default()
        }
    }

    /// A series of at most `points` points that follows the value step by step while it has
    /// fewer distinct ticks than that: a point's value is what was left after the last event
    /// of its tick (a late event, replayed after a later tick, sets the last point's). Summed
    /// with other processes' series, it gives the value at any moment as a snapshot taken then
    /// does (the family's combined peak); once full, it keeps the highest values as any series.
    pub fn steps(points: usize) -> Series {
        Series {
            steps: true,
            ..Series::with_capacity(points)
        }
    }

    /// Records `value` at `tick` (ticks come in order; a late one joins the last bucket).
    #[inline]
    pub fn record(&mut self, tick: u64, value: u64) {
        self.record_event(tick, value, 0);
    }

    /// Records `value` at `tick`, the value after the event `event` (its index in the replay's
    /// order): a point's event is where a snapshot finds its value exactly, where a tick may
    /// hold several events of different values. Inlined: the replay calls it for every event.
    #[inline]
    pub fn record_event(&mut self, tick: u64, value: u64, event: u64) {
        let bucket = tick >> self.shift;
        match self.points.last_mut() {
            Some(last) if last.0 >= bucket => {
                if self.steps && self.shift == 0 {
                    last.2 = value;
                    self.set_last_event(event);
                } else if value > last.2 {
                    last.1 = tick;
                    last.2 = value;
                    if self.steps {
                        self.set_last_event(event);
                    }
                }
            }
            _ => self.open_bucket(bucket, tick, value, event),
        }
    }

    #[inline]
    fn set_last_event(&mut self, event: u64) {
        if let Some(e) = self.events.last_mut() {
            *e = event;
        }
    }

    /// Records `value` at `tick` where `value` is no higher than the last value recorded (a
    /// fall): within the last bucket that changes nothing (its highest stays), so only a new
    /// bucket is looked for.
    #[inline]
    pub fn record_fall(&mut self, tick: u64, value: u64) {
        self.record_fall_event(tick, value, 0);
    }

    /// [`Series::record_fall`] after the event `event` ([`Series::record_event`]).
    #[inline]
    pub fn record_fall_event(&mut self, tick: u64, value: u64, event: u64) {
        match self.points.last() {
            Some(last) if last.0 >= tick >> self.shift && !self.steps => {}
            _ => self.record_event(tick, value, event),
        }
    }

    /// A point in a new bucket (widening the buckets first when the series is full).
    #[cold]
    fn open_bucket(&mut self, bucket: u64, tick: u64, value: u64, event: u64) {
        let capacity = if self.capacity == 0 {
            MAX_POINTS
        } else {
            self.capacity
        };
        if self.points.len() >= capacity {
            self.widen();
            return self.record_event(tick, value, event);
        }
        self.points.push((bucket, tick, value));
        if self.steps {
            self.events.push(event);
        }
    }

    /// Doubles the bucket width, merging pairs of buckets into their highest point.
    fn widen(&mut self) {
        self.shift = (self.shift + 1).min(63);
        let mut merged: Vec<(u64, u64, u64)> = Vec::with_capacity(self.points.len() / 2 + 1);
        let mut events: Vec<u64> = Vec::with_capacity(self.events.len() / 2 + 1);
        for (i, &(_, tick, value)) in self.points.iter().enumerate() {
            let event = self.events.get(i).copied().unwrap_or(0);
            let bucket = tick >> self.shift;
            match merged.last_mut() {
                Some(last) if last.0 >= bucket => {
                    if value > last.2 {
                        last.1 = tick;
                        last.2 = value;
                        if let Some(e) = events.last_mut() {
                            *e = event;
                        }
                    }
                }
                _ => {
                    merged.push((bucket, tick, value));
                    if self.steps {
                        events.push(event);
                    }
                }
            }
        }
        self.points = merged;
        self.events = events;
    }

    /// Forgets every point.
    pub fn clear(&mut self) {
        *self = Series {
            capacity: self.capacity,
            steps: self.steps,
            ..Series::default()
        };
    }

    /// The (tick, value) points in time order.
    pub fn points(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.points.iter().map(|&(_, t, v)| (t, v))
    }

    /// The (tick, value, event) points in time order ([`Series::record_event`]; events only
    /// in a steps series, else 0).
    pub fn points_with_events(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let events = self.events.iter().copied().chain(std::iter::repeat(0));
        self.points
            .iter()
            .zip(events)
            .map(|(&(_, t, v), e)| (t, v, e))
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_the_highest_value_kept() {
        let mut s = Series::default();
        for t in 0..1_000_000u64 {
            s.record(1_000 + t * 7, if t == 654_321 { 1 << 40 } else { t % 977 });
        }
        assert!(
            s.len() <= MAX_POINTS && s.len() > MAX_POINTS / 4,
            "{}",
            s.len()
        );
        assert!(s.points().any(|p| p == (1_000 + 654_321 * 7, 1 << 40)));
        let ticks: Vec<u64> = s.points().map(|p| p.0).collect();
        assert!(ticks.windows(2).all(|w| w[0] < w[1]));
        let mut few = Series::default();
        few.record(5, 1);
        few.record(5, 3);
        few.record(9, 2);
        assert_eq!(few.points().collect::<Vec<_>>(), vec![(5, 3), (9, 2)]);
    }

    #[test]
    fn steps_keep_what_each_tick_left() {
        let mut s = Series::steps(100);
        s.record(5, 1);
        s.record(5, 3);
        s.record(5, 2);
        s.record(9, 100);
        s.record(7, 52); // late: replayed after tick 9
        assert_eq!(s.points().collect::<Vec<_>>(), vec![(5, 2), (9, 52)]);
    }

    #[test]
    fn a_steps_series_names_the_event_of_each_value_widened_or_not() {
        let mut s = Series::steps(2);
        s.record_event(1, 5, 1);
        s.record_event(1, 3, 2); // the tick's last value and event
        s.record_event(2, 4, 3);
        s.record_event(3, 1, 4); // full: two ticks a bucket from here, each its highest
        s.record_event(3, 9, 5);
        assert_eq!(
            s.points_with_events().collect::<Vec<_>>(),
            vec![(1, 3, 2), (3, 9, 5)]
        );
        // Other series name no event.
        let mut plain = Series::with_capacity(4);
        plain.record_event(1, 5, 1);
        assert_eq!(
            plain.points_with_events().collect::<Vec<_>>(),
            vec![(1, 5, 0)]
        );
    }
}
