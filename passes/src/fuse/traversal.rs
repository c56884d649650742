//! Growing traversal groups along data flow, and ordering the groups (part of [`super::fuse`]).
//!
//! An instruction joins the traversal groups it reads registers from when its level fits
//! (edge work into `Rows(Edges)` or node-parallel groups, node work into `Rows(Nodes)` or
//! node-parallel groups, other domains into `Rows` groups of their space); a merge is undone
//! when it would make the group graph cyclic (a group reading, through memory, a value that it
//! computes itself or that depends on it). A sum into compact rows (`scatter .. by compact.e`)
//! stays in a `Rows(Edges)` group: there a back end can run the edges grouped by compact row and
//! add without atomics (the CPU does), where a node-parallel group is grouped by destination
//! and would need an atomic add per element.

use super::{resolve, row_space, Fusion, Group, GroupId, State, Template};
use pigeon_ir::inter::{Domain, Op, ValueId};
use pigeon_ir::plan::{RowSpace, Schedule};
use pigeon_ir::EntityId;

impl State<'_> {
    /// The schedule a traversal group has, or `None` for a GEMM or dissolved group.
    fn schedule(&self, g: usize) -> Option<Schedule> {
        match self.groups.get(g)?.as_ref()?.template {
            Template::Traversal(s) => Some(s),
            Template::Gemm | Template::WeightGrad => None,
        }
    }

    /// Whether instruction `v` may run inside traversal group `g`.
    fn compatible(&self, v: ValueId, g: usize) -> bool {
        let Some(s) = self.schedule(g) else { return false };
        let edge_ok = matches!(s, Schedule::Rows(RowSpace::Edges) | Schedule::NodeParallel);
        let node_ok = matches!(s, Schedule::Rows(RowSpace::Nodes) | Schedule::NodeParallel);
        match self.module.insts[v].op {
            Op::Aggregate { .. } => return edge_ok,
            Op::Scatter { x, .. } => {
                return match self.module.ty(x).domain {
                    Domain::Edge => edge_ok,
                    d => s == Schedule::Rows(row_space(d)),
                }
            }
            _ => {}
        }
        match self.module.ty(v).domain {
            Domain::Edge => edge_ok,
            Domain::Node => node_ok,
            d => s == Schedule::Rows(row_space(d)),
        }
    }

    /// Puts `v` into a traversal group: with the groups of the registers it reads if possible.
    pub(super) fn join_traversal(&mut self, v: ValueId) {
        let mut cands: Vec<usize> = Vec::new();
        for p in self.module.insts[v].op.operands() {
            if !self.materialised[p.index()] {
                continue;
            }
            if let Some(g) = self.group_of[p.index()] {
                if !cands.contains(&g) && self.compatible(v, g) {
                    cands.push(g);
                }
            }
        }
        let mut attempts = vec![cands.clone()];
        attempts.extend(cands.iter().map(|&g| vec![g]));
        for attempt in attempts {
            if !self.keeps_compact_sums_on_edge_rows(v, &attempt) {
                continue;
            }
            let saved = (self.group_of.clone(), self.groups.clone());
            self.merge(v, &attempt);
            if self.order().is_some() {
                return;
            }
            (self.group_of, self.groups) = saved;
        }
        let hint = self.hint_for(v);
        self.new_group(Template::Traversal(hint), vec![v]);
    }

    /// The schedule of `v` merged with the groups `gs`: theirs when all agree, node-parallel
    /// otherwise (`Rows(Edges)` or `Rows(Nodes)` work meeting softmax, aggregation or each
    /// other).
    fn merged_schedule(&self, v: ValueId, gs: &[usize]) -> Schedule {
        let mut schedules: Vec<Schedule> = gs.iter().filter_map(|&g| self.schedule(g)).collect();
        schedules.push(self.hint_for(v));
        if schedules.iter().all(|&s| s == schedules[0]) {
            schedules[0]
        } else {
            Schedule::NodeParallel
        }
    }

    /// Whether merging `v` with the groups `gs` leaves every sum into compact rows among them
    /// in a `Rows(Edges)` group (module doc).
    fn keeps_compact_sums_on_edge_rows(&self, v: ValueId, gs: &[usize]) -> bool {
        let compact_sum = |m: &ValueId| {
            matches!(
                self.module.insts[*m].op,
                Op::Scatter { index: pigeon_ir::Index::EdgeToCompact(_), .. }
            )
        };
        let members = gs.iter().filter_map(|&g| self.groups.get(g)?.as_ref());
        let any = compact_sum(&v) || members.flat_map(|g| g.members.iter()).any(compact_sum);
        !any || self.merged_schedule(v, gs) == Schedule::Rows(RowSpace::Edges)
    }

    /// Merges `v` and the groups `gs` into the first of them.
    fn merge(&mut self, v: ValueId, gs: &[usize]) {
        let Some((&target, rest)) = gs.split_first() else {
            let hint = self.hint_for(v);
            self.new_group(Template::Traversal(hint), vec![v]);
            return;
        };
        let schedule = self.merged_schedule(v, gs);
        let mut members = vec![v];
        for &g in rest {
            if let Some(group) = self.groups[g].take() {
                members.extend(group.members);
            }
        }
        for m in &members {
            self.group_of[m.index()] = Some(target);
        }
        if let Some(group) = self.groups[target].as_mut() {
            group.members.extend(members);
            group.members.sort();
            group.template = Template::Traversal(schedule);
        }
    }

    /// Horizontal fusion: merges traversal groups with the same schedule when no data path
    /// joins them (siblings reading the same rows, such as HGT's two skip gates), so they run
    /// as one kernel and share their loads.
    pub(super) fn merge_siblings(&mut self) {
        for i in 0..self.groups.len() {
            for j in i + 1..self.groups.len() {
                let (Some(si), Some(sj)) = (self.schedule(i), self.schedule(j)) else { continue };
                if si != sj {
                    continue;
                }
                let saved = (self.group_of.clone(), self.groups.clone());
                if let Some(group) = self.groups[j].take() {
                    for m in &group.members {
                        self.group_of[m.index()] = Some(i);
                    }
                    if let Some(target) = self.groups[i].as_mut() {
                        target.members.extend(group.members);
                        target.members.sort();
                    }
                }
                if self.order().is_none() {
                    (self.group_of, self.groups) = saved;
                }
            }
        }
    }

    /// The groups that group `g` must run after, or `None` when `g` reads through memory a
    /// value it computes itself.
    fn deps(&self, g: usize, group: &Group) -> Option<Vec<usize>> {
        let mut deps = Vec::new();
        for &m in &group.members {
            let op = &self.module.insts[m].op;
            for p in op.operands() {
                let direct = self.materialised[p.index()] && !super::memory_operand(op, p);
                if direct && self.group_of[p.index()] == Some(g) {
                    if super::scatter_store(&self.module.insts[p].op).is_some() {
                        return None; // complete only after the kernel
                    }
                    continue; // a register
                }
                let Some((src, _)) = resolve(self.module, &self.materialised, p) else {
                    continue; // an inlined constant
                };
                match self.group_of[src.index()] {
                    Some(h) if h == g => return None,
                    Some(h) => deps.push(h),
                    None => {}
                }
            }
        }
        Some(deps)
    }

    /// The live groups in a valid execution order, or `None` when the group graph is cyclic.
    pub(super) fn order(&self) -> Option<Vec<usize>> {
        let n = self.groups.len();
        let mut succ = vec![Vec::new(); n];
        let mut indeg = vec![0usize; n];
        for (g, group) in self.groups.iter().enumerate() {
            let Some(group) = group else { continue };
            for h in self.deps(g, group)? {
                succ[h].push(g);
                indeg[g] += 1;
            }
        }
        // Kahn's algorithm, taking the group with the smallest first member first, so that the
        // order follows the program where it can.
        let first = |g: usize| self.groups[g].as_ref().and_then(|gr| gr.members.first().copied());
        let mut ready: Vec<usize> =
            (0..n).filter(|&g| self.groups[g].is_some() && indeg[g] == 0).collect();
        let mut out = Vec::new();
        while !ready.is_empty() {
            ready.sort_by_key(|&g| std::cmp::Reverse(first(g)));
            let Some(g) = ready.pop() else { break };
            out.push(g);
            for &s in &succ[g] {
                indeg[s] -= 1;
                if indeg[s] == 0 {
                    ready.push(s);
                }
            }
        }
        let live = self.groups.iter().filter(|g| g.is_some()).count();
        (out.len() == live).then_some(out)
    }

    /// The final partition, groups renumbered in execution order.
    pub(super) fn finish(self) -> Fusion {
        // Every merge kept the graph acyclic; should that ever fail, fall back to creation
        // order, which `lower_to_plan` then reports as an internal error.
        let order = self.order().unwrap_or_else(|| {
            (0..self.groups.len()).filter(|&g| self.groups[g].is_some()).collect()
        });
        let mut renumber = vec![None; self.groups.len()];
        for (new, &old) in order.iter().enumerate() {
            renumber[old] = Some(GroupId::new(new));
        }
        let group_of = self.group_of.iter().map(|g| g.and_then(|g| renumber[g])).collect();
        let groups = order.iter().filter_map(|&g| self.groups[g].clone()).collect();
        let inlined = self
            .module
            .insts
            .iter()
            .map(|(v, inst)| {
                !self.materialised[v.index()]
                    && !matches!(inst.op, Op::Input { .. } | Op::Weight(_))
            })
            .collect();
        Fusion { group_of, groups, inlined }
    }
}
