//! Builder-style setters for the `#[non_exhaustive]` configs, written once:
//! users outside the crate cannot use struct literals on such a struct, so
//! every setting gets a `fn setting(self, value) -> Self`.

/// `setters! { field: Type, … }` inside an `impl` block makes one setter per
/// field, named after it and documented as setting it.
macro_rules! setters {
    ($($field:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
            pub fn $field(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

pub(crate) use setters;
