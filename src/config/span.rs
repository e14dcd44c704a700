//! Places in the configuration text, kept with what was read there.

use std::ops::Range;

/// A byte range in the configuration text.
pub type Span = Range<usize>;

/// A value read from the configuration, with the place it was written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spanned<T> {
    pub span: Span,
    pub value: T,
}

impl<T> Spanned<T> {
    pub fn new(span: Span, value: T) -> Self {
        Spanned { span, value }
    }
}
