//! Typed arenas with `u32` newtype ids, in the manner of Cranelift's `PrimaryMap`.
//!
//! An id is only meaningful for the arena that created it. Ids print with a short prefix
//! (`v3`, `w1`) so that text forms and error messages name entities the same way.

use std::fmt;
use std::marker::PhantomData;

/// A `u32` newtype usable as an arena key.
pub trait EntityId: Copy + Eq + Ord + std::hash::Hash + fmt::Debug + fmt::Display {
    /// The id of the `index`-th entity.
    fn new(index: usize) -> Self;
    /// The position of this entity in its arena.
    fn index(self) -> usize;
}

/// Declares an entity id type that prints as `{prefix}{index}`.
#[macro_export]
macro_rules! entity_id {
    ($(#[$attr:meta])* $name:ident, $prefix:literal) => {
        $(#[$attr])*
        #[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u32);

        impl $crate::entity::EntityId for $name {
            fn new(index: usize) -> Self {
                // Arenas never hold more than u32::MAX entities; a model that large is rejected
                // long before, by the lowering's size checks.
                $name(u32::try_from(index).unwrap_or(u32::MAX))
            }
            fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl $name {
            /// The textual prefix of this id kind.
            pub const PREFIX: &'static str = $prefix;
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(self, f)
            }
        }
    };
}

/// A vector of entities indexed by a typed id; entities are only ever appended.
#[derive(Clone, PartialEq)]
pub struct Arena<K: EntityId, V> {
    items: Vec<V>,
    _key: PhantomData<K>,
}

impl<K: EntityId, V> Arena<K, V> {
    /// An empty arena.
    pub fn new() -> Self {
        Self { items: Vec::new(), _key: PhantomData }
    }
    /// Appends `value` and returns its id.
    pub fn push(&mut self, value: V) -> K {
        let id = K::new(self.items.len());
        self.items.push(value);
        id
    }
    /// The entity `id`, or `None` when `id` is not from this arena.
    pub fn get(&self, id: K) -> Option<&V> {
        self.items.get(id.index())
    }
    /// Mutable access to entity `id`.
    pub fn get_mut(&mut self, id: K) -> Option<&mut V> {
        self.items.get_mut(id.index())
    }
    /// Number of entities.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether the arena holds no entity.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Whether `id` names an entity of this arena.
    pub fn contains(&self, id: K) -> bool {
        id.index() < self.items.len()
    }
    /// Ids and entities in creation order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (K, &V)> + '_ {
        self.items.iter().enumerate().map(|(i, v)| (K::new(i), v))
    }
    /// All ids in creation order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = K> {
        (0..self.items.len()).map(K::new)
    }
    /// Entities in creation order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &V> + '_ {
        self.items.iter()
    }
}

impl<K: EntityId, V> Default for Arena<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: EntityId, V> std::ops::Index<K> for Arena<K, V> {
    type Output = V;
    fn index(&self, id: K) -> &V {
        &self.items[id.index()]
    }
}

impl<K: EntityId, V> std::ops::IndexMut<K> for Arena<K, V> {
    fn index_mut(&mut self, id: K) -> &mut V {
        &mut self.items[id.index()]
    }
}

impl<K: EntityId, V: fmt::Debug> fmt::Debug for Arena<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Side data for the entities of an arena, with a default for entities not yet set.
#[derive(Clone, Debug)]
pub struct SecondaryMap<K: EntityId, V: Clone> {
    items: Vec<V>,
    default: V,
    _key: PhantomData<K>,
}

impl<K: EntityId, V: Clone> SecondaryMap<K, V> {
    /// A map whose every entry reads as `default` until set.
    pub fn with_default(default: V) -> Self {
        Self { items: Vec::new(), default, _key: PhantomData }
    }
    /// Sets the entry of `id`.
    pub fn set(&mut self, id: K, value: V) {
        let i = id.index();
        if i >= self.items.len() {
            self.items.resize(i + 1, self.default.clone());
        }
        self.items[i] = value;
    }
}

impl<K: EntityId, V: Clone> std::ops::Index<K> for SecondaryMap<K, V> {
    type Output = V;
    fn index(&self, id: K) -> &V {
        self.items.get(id.index()).unwrap_or(&self.default)
    }
}
