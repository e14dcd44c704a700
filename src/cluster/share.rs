//! A fair share of the units: every instance works it out alike from the
//! list of live instances, so that together they own each unit once.

/// How many of `units` the instance at `index` among `live` ones should
/// own: `units / live`, one more for the first `units % live`.
pub fn share(units: usize, live: usize, index: usize) -> usize {
    let live = live.max(1);
    units / live + usize::from(index < units % live)
}

/// The order an instance tries free units in: from its own place in the
/// ring on, so that instances starting together reach for different ones.
pub fn preference(units: usize, live: usize, index: usize) -> impl Iterator<Item = usize> {
    let start = (index * units) / live.max(1);
    (0..units).map(move |i| (start + i) % units.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_units_and_differ_by_one_at_most() {
        for units in 0..20 {
            for live in 1..8 {
                let shares: Vec<usize> = (0..live).map(|i| share(units, live, i)).collect();
                assert_eq!(shares.iter().sum::<usize>(), units, "{units} {live}");
                let (min, max) = (shares.iter().min(), shares.iter().max());
                assert!(max.unwrap() - min.unwrap() <= 1, "{shares:?}");
            }
        }
        assert_eq!(share(7, 0, 0), 7);
    }

    #[test]
    fn instances_start_from_different_units() {
        let firsts: Vec<usize> = (0..4)
            .map(|i| preference(8, 4, i).next().unwrap())
            .collect();
        assert_eq!(firsts, [0, 2, 4, 6]);
        let mut all: Vec<usize> = preference(5, 2, 1).collect();
        assert_eq!(all, [2, 3, 4, 0, 1]);
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4]);
    }
}
