//! A scenario and its IPv6 twin, as two tests over one body: a test file
//! writes the scenario once, over its `Family` (its addresses of one
//! family), and names the two tests here.

/// Declares, for each `$v4, $v6: $body($tag);`, the test `$v4`, which
/// runs `$body($tag, &V4)`, and `$v6`, which runs `$body("<$tag>6", &V6)`:
/// `V4` and `V6` are the calling file's families, `$tag` names the test's
/// sandbox.
#[macro_export]
macro_rules! family_twins {
    ($($v4:ident, $v6:ident: $body:ident($tag:literal);)*) => {
        $(
            #[test]
            fn $v4() {
                $body($tag, &V4);
            }

            #[test]
            fn $v6() {
                $body(concat!($tag, "6"), &V6);
            }
        )*
    };
}
