//! An LRU list with O(1) insert, touch, remove and evict: a doubly linked
//! list threaded through a slab (`Vec`) by index, so no allocation per
//! touch and no unsafe code.
//!
//! It orders keys; it knows nothing of what they name.

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Node<T> {
    value: Option<T>,
    prev: u32,
    next: u32,
}

/// A handle to an element, valid until it is removed or evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle(u32);

/// Most recently used at the front, evicted from the back.
#[derive(Debug)]
pub struct Lru<T> {
    nodes: Vec<Node<T>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    len: usize,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Lru {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl<T> Lru<T> {
    /// Elements held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn node(&mut self, i: u32) -> &mut Node<T> {
        &mut self.nodes[i as usize]
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = self.node(i);
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.node(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.node(next).prev = prev;
        }
    }

    fn link_front(&mut self, i: u32) {
        let head = self.head;
        {
            let n = self.node(i);
            n.prev = NIL;
            n.next = head;
        }
        if head == NIL {
            self.tail = i;
        } else {
            self.node(head).prev = i;
        }
        self.head = i;
    }

    /// Inserts as most recently used.
    pub fn push_front(&mut self, value: T) -> Handle {
        let node = Node {
            value: Some(value),
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.link_front(i);
        self.len += 1;
        Handle(i)
    }

    /// Marks as most recently used.
    pub fn touch(&mut self, h: Handle) {
        if self.head != h.0 {
            self.unlink(h.0);
            self.link_front(h.0);
        }
    }

    /// Removes an element by handle.
    pub fn remove(&mut self, h: Handle) -> Option<T> {
        let v = self.nodes.get_mut(h.0 as usize)?.value.take()?;
        self.unlink(h.0);
        self.free.push(h.0);
        self.len -= 1;
        Some(v)
    }

    /// Removes the least recently used element.
    pub fn pop_back(&mut self) -> Option<T> {
        if self.tail == NIL {
            return None;
        }
        self.remove(Handle(self.tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_touched_is_evicted_first() {
        let mut l = Lru::default();
        let a = l.push_front("a");
        let _b = l.push_front("b");
        let c = l.push_front("c");
        l.touch(a);
        assert_eq!(l.pop_back(), Some("b"));
        l.touch(c);
        assert_eq!(l.pop_back(), Some("a"));
        assert_eq!(l.pop_back(), Some("c"));
        assert_eq!(l.pop_back(), None);
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn removed_slots_are_reused_and_removal_is_idempotent() {
        let mut l = Lru::default();
        let a = l.push_front(1);
        let b = l.push_front(2);
        assert_eq!(l.remove(a), Some(1));
        assert_eq!(l.remove(a), None);
        let c = l.push_front(3);
        assert_eq!(c, a, "the freed slot is reused");
        l.touch(b);
        assert_eq!(l.pop_back(), Some(3));
        assert_eq!(l.pop_back(), Some(2));
    }
}
