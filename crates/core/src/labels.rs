//! Metric labels derived from an enum. One table of `pattern => "label"`
//! makes both the method that labels a value and the list of every label
//! (which the metrics pre-initialise, so a rate reads zero rather than
//! nothing): a variant cannot be added without a label, as the match would
//! not be exhaustive, and no label can be missing from the list, as the
//! list is the table's.

/// Writes, inside an `impl` block, `pub const LIST: &[&str]`, every label
/// of the table in its order, and `pub fn name(&self) -> &'static str`, a
/// match over the table. Variants that share a label share an arm (`A | B
/// => "a"`), so each label is listed once; two arms with one label do not
/// compile.
///
/// ```
/// enum Door { Open, Ajar, Shut }
/// impl Door {
///     ndas_core::labels! {
///         /// Every `state` label.
///         STATES;
///         /// This door's `state` label.
///         fn state;
///         Door::Open | Door::Ajar => "open",
///         Door::Shut => "shut",
///     }
/// }
/// assert_eq!(Door::STATES, ["open", "shut"]);
/// assert_eq!(Door::Ajar.state(), "open");
/// ```
///
/// A variant without a label does not compile:
///
/// ```compile_fail,E0004
/// enum Door { Open, Ajar, Shut }
/// impl Door {
///     ndas_core::labels! { STATES; fn state; Door::Open => "open", Door::Shut => "shut" }
/// }
/// ```
///
/// Nor does a label given by two arms:
///
/// ```compile_fail,E0080
/// enum Door { Open, Ajar, Shut }
/// impl Door {
///     ndas_core::labels! {
///         STATES; fn state;
///         Door::Open => "open", Door::Ajar => "open", Door::Shut => "shut",
///     }
/// }
/// Door::Shut.state();
/// ```
#[macro_export]
macro_rules! labels {
    (
        $(#[$list_meta:meta])* $list:ident;
        $(#[$fn_meta:meta])* fn $name:ident;
        $($pattern:pat => $label:literal),+ $(,)?
    ) => {
        $(#[$list_meta])*
        pub const $list: &'static [&'static str] = &[$($label),+];

        $(#[$fn_meta])*
        pub fn $name(&self) -> &'static str {
            // Checked when the crate is built, not when a test runs.
            const {
                assert!(
                    $crate::labels::distinct(Self::$list),
                    "two arms give one label: join their patterns with `|`"
                )
            };
            match self {
                $($pattern => $label,)+
            }
        }
    };
}

/// Whether no label is listed twice: a label listed twice is one series
/// held twice, and a total over the list would count it twice.
pub const fn distinct(labels: &[&str]) -> bool {
    let mut i = 0;
    while i < labels.len() {
        let mut j = i + 1;
        while j < labels.len() {
            if same(labels[i], labels[j]) {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

/// `a == b`, which `str` does not offer in a `const fn`.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::distinct;

    #[test]
    fn a_label_listed_twice_is_caught() {
        assert!(distinct(&[]));
        assert!(distinct(&["bad_ntime", "bad_version", "bad"]));
        assert!(!distinct(&["stale", "duplicate", "stale"]));
    }

    enum Door {
        Open,
        Ajar,
        Shut,
    }

    impl Door {
        crate::labels! {
            STATES;
            fn state;
            Door::Open | Door::Ajar => "open",
            Door::Shut => "shut",
        }
    }

    #[test]
    fn the_list_is_the_tables_labels_in_order_and_the_method_its_match() {
        assert_eq!(Door::STATES, ["open", "shut"]);
        let states: Vec<_> = [Door::Open, Door::Ajar, Door::Shut]
            .iter()
            .map(Door::state)
            .collect();
        assert_eq!(states, ["open", "open", "shut"]);
    }
}
