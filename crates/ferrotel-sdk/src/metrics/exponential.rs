//! The base-2 exponential bucket histogram aggregation, as the spec defines it: bucket `i` at
//! scale `s` holds the values in `(2^(i·2^-s), 2^((i+1)·2^-s)]`; positive and negative values
//! (by magnitude) have bucket sets of their own sharing one scale, zeros are counted apart.
//! Recording starts at `max_scale` and lowers the scale just enough to keep either set within
//! `max_size` buckets.
//!
//! Collections follow upstream's SDK so points compare equal: the scale new values map at
//! only ever goes down, each collection interval is aggregated apart, and a cumulative reader
//! merges every interval into its running total at the lower of the two scales (lowered
//! further if the merged range would not fit). An interval that saw only zeros reports scale
//! 0, as upstream's does.

use std::collections::VecDeque;

/// The highest scale the spec recommends (and the default).
pub const MAX_SCALE: i8 = 20;
/// The lowest scale: at -10 two buckets cover every finite double.
pub const MIN_SCALE: i8 = -10;
/// The spec's default number of buckets per sign.
pub const DEFAULT_MAX_SIZE: u32 = 160;
/// Fewer buckets than this could not hold the whole double range even at the lowest scale.
pub const MIN_MAX_SIZE: u32 = 2;
/// A guard against giant histograms made by accident (upstream's limit).
pub const MAX_MAX_SIZE: u32 = 16384;

const MANTISSA_BITS: u32 = 52;
const MANTISSA_MASK: u64 = (1 << MANTISSA_BITS) - 1;
const EXPONENT_BIAS: i32 = 1023;
const MIN_NORMAL_EXPONENT: i32 = 1 - EXPONENT_BIAS;
const MAX_NORMAL_EXPONENT: i32 = EXPONENT_BIAS;

fn exponent_of(value: f64) -> i32 {
    ((value.to_bits() >> MANTISSA_BITS) & 0x7ff) as i32 - EXPONENT_BIAS
}

fn mantissa_of(value: f64) -> u64 {
    value.to_bits() & MANTISSA_MASK
}

/// The index of the bucket holding the positive, finite `magnitude` at `scale`. At scales up
/// to 0 it comes exactly from the binary exponent; above 0 from the logarithm, exact powers
/// of two placed by their exponent (they are upper bounds, and `ln` could round them across).
/// Subnormals share the bucket below the smallest normal value's.
pub fn index_of(magnitude: f64, scale: i8) -> i32 {
    if scale <= 0 {
        let shift = -i32::from(scale);
        if magnitude < f64::MIN_POSITIVE {
            let lowest = MIN_NORMAL_EXPONENT >> shift;
            return if shift < 2 { lowest - 1 } else { lowest };
        }
        let exact_power = i32::from(mantissa_of(magnitude) == 0);
        return (exponent_of(magnitude) - exact_power) >> shift;
    }
    let scale = i32::from(scale);
    if magnitude <= f64::MIN_POSITIVE {
        return (MIN_NORMAL_EXPONENT << scale) - 1;
    }
    if mantissa_of(magnitude) == 0 {
        return (exponent_of(magnitude) << scale) - 1;
    }
    let scale_factor = (1.0 / std::f64::consts::LN_2) * f64::from(1u32 << scale);
    let highest = ((MAX_NORMAL_EXPONENT + 1) << scale) - 1;
    ((magnitude.ln() * scale_factor).floor() as i64).min(i64::from(highest)) as i32
}

/// How many halvings bring the index range `[low, high]` within `max_size` buckets.
fn scale_change(mut low: i32, mut high: i32, max_size: u32) -> i8 {
    let mut change = 0;
    while i64::from(high) - i64::from(low) >= i64::from(max_size) {
        low >>= 1;
        high >>= 1;
        change += 1;
    }
    change
}

/// The counts of one sign's buckets: `counts[i]` is bucket `offset + i`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    offset: i32,
    counts: VecDeque<u64>,
}

impl Buckets {
    pub fn offset(&self) -> i32 {
        self.offset
    }

    pub fn counts(&self) -> Vec<u64> {
        self.counts.iter().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The lowest and highest index held, if any.
    fn range(&self) -> Option<(i32, i32)> {
        (!self.counts.is_empty()).then(|| (self.offset, self.offset + self.counts.len() as i32 - 1))
    }

    fn add(&mut self, index: i32, count: u64) {
        let Some((low, high)) = self.range() else {
            self.offset = index;
            self.counts.push_back(count);
            return;
        };
        if index < low {
            for _ in index..low {
                self.counts.push_front(0);
            }
            self.offset = index;
        } else if index > high {
            self.counts.resize(self.counts.len() + (index - high) as usize, 0);
        }
        self.counts[(index - self.offset) as usize] += count;
    }

    /// The same counts `change` scales lower: every `2^change` buckets become one.
    fn downscale(&mut self, change: i8) {
        if change <= 0 || self.counts.is_empty() {
            return;
        }
        let old = std::mem::take(&mut self.counts);
        let offset = self.offset;
        for (i, count) in old.into_iter().enumerate() {
            if count > 0 {
                self.add((offset + i as i32) >> change, count);
            }
        }
    }
}

/// What one collection interval (or a cumulative total) holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub zero_count: u64,
    /// `None` until something was recorded.
    pub scale: Option<i8>,
    pub positive: Buckets,
    pub negative: Buckets,
}

impl Default for Interval {
    fn default() -> Interval {
        Interval {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zero_count: 0,
            scale: None,
            positive: Buckets::default(),
            negative: Buckets::default(),
        }
    }
}

impl Interval {
    fn downscale(&mut self, change: i8) {
        self.positive.downscale(change);
        self.negative.downscale(change);
    }
}

/// One stream's exponential histogram for one reader.
#[derive(Debug, Clone)]
pub struct ExponentialHistogram {
    max_size: u32,
    /// The scale new values are mapped at; it only goes down.
    mapping_scale: i8,
    current: Interval,
    /// A cumulative reader's running total.
    total: Option<Interval>,
}

impl ExponentialHistogram {
    /// `max_size` and `max_scale` are clamped to what the spec allows.
    pub fn new(max_size: u32, max_scale: i8) -> ExponentialHistogram {
        ExponentialHistogram {
            max_size: max_size.clamp(MIN_MAX_SIZE, MAX_MAX_SIZE),
            mapping_scale: max_scale.clamp(MIN_SCALE, MAX_SCALE),
            current: Interval::default(),
            total: None,
        }
    }

    pub fn record(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let current = &mut self.current;
        current.count += 1;
        current.sum += value;
        current.min = current.min.min(value);
        current.max = current.max.max(value);
        if value == 0.0 {
            current.zero_count += 1;
            if current.zero_count == current.count {
                current.scale = Some(0);
            }
            return;
        }
        let magnitude = value.abs();
        let mut index = index_of(magnitude, self.mapping_scale);
        let buckets = if value > 0.0 {
            &current.positive
        } else {
            &current.negative
        };
        if let Some((low, high)) = buckets.range() {
            let (low, high) = (low.min(index), high.max(index));
            let change = scale_change(low, high, self.max_size);
            if change > 0 {
                current.downscale(change);
                self.mapping_scale -= change;
                index = index_of(magnitude, self.mapping_scale);
            }
        }
        current.scale = Some(self.mapping_scale);
        let buckets = if value > 0.0 {
            &mut current.positive
        } else {
            &mut current.negative
        };
        buckets.add(index, 1);
    }

    /// What was recorded since the last collection, which starts afresh.
    pub fn take_interval(&mut self) -> Interval {
        std::mem::take(&mut self.current)
    }

    /// The running total with this interval merged in.
    pub fn cumulative(&mut self) -> Interval {
        let interval = self.take_interval();
        let mapping_scale = self.mapping_scale;
        let max_size = self.max_size;
        let total = self.total.get_or_insert_with(|| Interval {
            scale: Some(interval.scale.unwrap_or(mapping_scale)),
            ..Interval::default()
        });
        merge(total, interval, max_size);
        total.clone()
    }
}

/// Adds `interval` into `total` at the lower of their scales, lowered further if either
/// sign's merged range would exceed `max_size` buckets.
pub fn merge(total: &mut Interval, interval: Interval, max_size: u32) {
    let total_scale = total.scale.unwrap_or(MAX_SCALE);
    let interval_scale = interval.scale.unwrap_or(total_scale);
    let mut scale = total_scale.min(interval_scale);
    let merged_range = |a: &Buckets, a_scale: i8, b: &Buckets, b_scale: i8, at: i8| {
        let shifted = |buckets: &Buckets, from: i8| buckets.range().map(|(l, h)| (l >> (from - at), h >> (from - at)));
        match (shifted(a, a_scale), shifted(b, b_scale)) {
            (Some((l1, h1)), Some((l2, h2))) => Some((l1.min(l2), h1.max(h2))),
            (one, other) => one.or(other),
        }
    };
    let change = [
        merged_range(&total.positive, total_scale, &interval.positive, interval_scale, scale),
        merged_range(&total.negative, total_scale, &interval.negative, interval_scale, scale),
    ]
    .into_iter()
    .flatten()
    .map(|(low, high)| scale_change(low, high, max_size))
    .max()
    .unwrap_or(0);
    scale -= change;
    total.downscale(total_scale - scale);
    let shift = interval_scale - scale;
    for (into, from) in [
        (&mut total.positive, &interval.positive),
        (&mut total.negative, &interval.negative),
    ] {
        for (i, count) in from.counts.iter().enumerate() {
            if *count > 0 {
                into.add((from.offset + i as i32) >> shift, *count);
            }
        }
    }
    total.scale = Some(scale);
    total.count += interval.count;
    total.sum += interval.sum;
    total.min = total.min.min(interval.min);
    total.max = total.max.max(interval.max);
    total.zero_count += interval.zero_count;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next_up(value: f64) -> f64 {
        f64::from_bits(value.to_bits() + 1)
    }

    fn counts(buckets: &Buckets) -> (i32, Vec<u64>) {
        (buckets.offset(), buckets.counts())
    }

    #[test]
    fn powers_of_two_are_upper_bounds_at_every_scale() {
        // (1, 2] is bucket 0 at scale 0; 2 itself is its upper bound.
        assert_eq!(index_of(1.0, 0), -1);
        assert_eq!(index_of(2.0, 0), 0);
        assert_eq!(index_of(next_up(2.0), 0), 1);
        assert_eq!(index_of(4.0, 0), 1);
        assert_eq!(index_of(4.0, -1), 0);
        assert_eq!(index_of(5.0, -1), 1);
        // At scale 1 the buckets split at sqrt(2).
        assert_eq!(index_of(2.0, 1), 1);
        assert_eq!(index_of(next_up(std::f64::consts::SQRT_2), 1), 1);
        assert_eq!(index_of(1.5, 1), 1);
        assert_eq!(index_of(1.25, 1), 0);
        for scale in [1, 5, 10, 20] {
            for exponent in [-1022, -5, 0, 1, 7, 1023] {
                let value = 2f64.powi(exponent);
                assert_eq!(
                    index_of(value, scale),
                    (exponent << scale) - 1,
                    "2^{exponent} at {scale}"
                );
            }
        }
    }

    #[test]
    fn the_extremes_of_the_double_range_map_within_bounds() {
        assert_eq!(index_of(f64::MAX, 20), (1024 << 20) - 1);
        assert_eq!(index_of(f64::MAX, 0), 1023);
        assert_eq!(index_of(f64::MAX, -10), 0);
        assert_eq!(index_of(f64::MIN_POSITIVE, 0), -1023);
        assert_eq!(index_of(5e-324, 0), -1023, "subnormals share the lowest bucket");
        assert_eq!(index_of(5e-324, 3), (-1022 << 3) - 1);
        assert_eq!(index_of(5e-324, -10), -1);
    }

    #[test]
    fn recording_lowers_the_scale_just_enough() {
        let mut histogram = ExponentialHistogram::new(4, 20);
        for value in [1.5, 2.5, 3.5] {
            histogram.record(value);
        }
        // 1.5 .. 3.5 spans more than 4 buckets until scale 1: (1.41, 2], (2, 2.83], (2.83, 4].
        let interval = histogram.take_interval();
        assert_eq!(interval.scale, Some(1));
        assert_eq!(counts(&interval.positive), (1, vec![1, 1, 1]));
        assert_eq!(
            (interval.count, interval.sum, interval.min, interval.max),
            (3, 7.5, 1.5, 3.5)
        );
        // The scale reached stays for the next interval.
        histogram.record(1.5);
        assert_eq!(histogram.take_interval().scale, Some(1));
    }

    #[test]
    fn negatives_and_zeros_are_kept_apart_under_one_scale() {
        let mut histogram = ExponentialHistogram::new(160, 20);
        for value in [0.0, -1.0, -1.0, 0.0, 3.0, -1e6] {
            histogram.record(value);
        }
        let interval = histogram.take_interval();
        assert_eq!(interval.zero_count, 2);
        assert_eq!(interval.positive.counts().iter().sum::<u64>(), 1);
        assert_eq!(interval.negative.counts().iter().sum::<u64>(), 3);
        let scale = interval.scale.unwrap();
        // 1 and 1e6 are about 20 powers of two apart: 160 buckets fit at scale 2.
        assert_eq!(scale, 2);
        assert_eq!(interval.negative.offset(), index_of(1.0, scale));
        assert_eq!((interval.min, interval.max), (-1e6, 3.0));

        let mut zeros = ExponentialHistogram::new(160, 20);
        zeros.record(0.0);
        assert_eq!(zeros.take_interval().scale, Some(0), "zeros only: scale 0");
    }

    #[test]
    fn a_huge_range_goes_down_to_the_lowest_scales() {
        let mut histogram = ExponentialHistogram::new(160, 20);
        histogram.record(f64::MIN_POSITIVE);
        histogram.record(f64::MAX);
        let interval = histogram.take_interval();
        // 2046 powers of two in 160 buckets: 2^4 per bucket.
        assert_eq!(interval.scale, Some(-4));
        assert_eq!(counts(&interval.positive).1.iter().sum::<u64>(), 2);
        assert!(interval.positive.counts().len() <= 160);
    }

    #[test]
    fn downscaling_folds_neighbouring_buckets() {
        let mut buckets = Buckets::default();
        for index in [-3, -2, -1, 0, 1, 2, 5] {
            buckets.add(index, 1);
        }
        buckets.downscale(1);
        assert_eq!(counts(&buckets), (-2, vec![1, 2, 2, 1, 1]));
        buckets.downscale(2);
        assert_eq!(counts(&buckets), (-1, vec![3, 4]));
    }

    #[test]
    fn cumulative_merges_each_interval_at_the_lower_scale() {
        let mut histogram = ExponentialHistogram::new(4, 20);
        histogram.record(1.5);
        let first = histogram.cumulative();
        assert_eq!(first.scale, Some(20));
        assert_eq!(first.count, 1);
        // The next interval needs scale 1; the total follows it down.
        histogram.record(2.5);
        histogram.record(3.5);
        let second = histogram.cumulative();
        assert_eq!(second.scale, Some(1));
        assert_eq!(counts(&second.positive), (1, vec![1, 1, 1]));
        assert_eq!((second.count, second.sum, second.min, second.max), (3, 7.5, 1.5, 3.5));
        // Nothing new: the same total again.
        assert_eq!(histogram.cumulative(), second);
    }

    #[test]
    fn merging_lowers_the_scale_when_the_union_would_not_fit() {
        // Each interval fits 4 buckets at scale 0 by itself; together they do not.
        let mut total = Interval::default();
        let mut first = ExponentialHistogram::new(4, 0);
        first.record(1.5);
        first.record(3.0);
        merge(&mut total, first.take_interval(), 4);
        let mut second = ExponentialHistogram::new(4, 0);
        second.record(100.0);
        merge(&mut total, second.take_interval(), 4);
        // Indices 0, 1 and 6 at scale 0 become 0, 0 and 3 at scale -1.
        assert_eq!(total.scale, Some(-1));
        assert_eq!(counts(&total.positive), (0, vec![2, 0, 0, 1]));
        assert_eq!(total.count, 3);
    }

    #[test]
    fn a_zeros_only_interval_takes_the_total_to_scale_zero_as_upstream() {
        let mut histogram = ExponentialHistogram::new(160, 20);
        histogram.record(1.5);
        assert_eq!(histogram.cumulative().scale, Some(20));
        histogram.record(0.0);
        let total = histogram.cumulative();
        assert_eq!(total.scale, Some(0));
        assert_eq!(counts(&total.positive), (0, vec![1]));
        assert_eq!(total.zero_count, 1);
    }
}
