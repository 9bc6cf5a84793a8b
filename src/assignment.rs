//! Minimum-cost assignment for the associative-embedding grouping (`decode::litepose`).
//!
//! The official grouping calls the Python `munkres` package (bmc/munkres 1.1.4, the version pip
//! installs for LitePose's unpinned `munkres` requirement) on a rows = candidate joints x columns
//! = people cost matrix. Two solvers live here:
//! - [`munkres`]: the same step-by-step Munkres procedure as that package (same zero search
//!   order, same float64 operations in the same order), so on equal-cost ties it picks the same
//!   assignment as the official code. O(n^4) in the worst case; n <= 30 in the grouping.
//! - [`min_cost_assignment`]: shortest augmenting paths with potentials (Hungarian, O(n^2 m)).
//!   Same minimal total cost, but on ties it may pick a different optimal assignment.
//!
//! Both pad a rectangular matrix with zeros to a square one, as `munkres` does, and report only
//! the pairs inside the original matrix: with rows <= columns every row gets a column; with
//! rows > columns exactly `columns` rows get one and the others get `None`.

/// Which solver the grouping uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Solver {
    /// [`munkres`]: the official package's procedure, identical choices on ties.
    #[default]
    Munkres,
    /// [`min_cost_assignment`]: O(n^3), same minimal cost, possibly another optimum on ties.
    Hungarian,
}

impl Solver {
    pub fn solve(self, cost: &[f64], rows: usize, cols: usize) -> Vec<Option<usize>> {
        match self {
            Solver::Munkres => munkres(cost, rows, cols),
            Solver::Hungarian => min_cost_assignment(cost, rows, cols),
        }
    }
}

/// Costs that are not finite (NaN, +-inf) are replaced by this before solving, so the solver
/// always terminates; such entries are avoided whenever a finite alternative exists.
const NON_FINITE_COST: f64 = 1e300;

/// Solves the assignment problem for the `rows` x `cols` row-major `cost` matrix.
///
/// Returns, for each row, the column assigned to it (`None` when rows > cols and the row is
/// left out). No column is used twice, and the sum of the chosen costs is minimal.
pub fn min_cost_assignment(cost: &[f64], rows: usize, cols: usize) -> Vec<Option<usize>> {
    assert_eq!(cost.len(), rows * cols, "cost matrix must be rows x cols");
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    let clean = |c: f64| if c.is_finite() { c } else { NON_FINITE_COST };
    if rows <= cols {
        solve(rows, cols, |r, c| clean(cost[r * cols + c])).into_iter().map(Some).collect()
    } else {
        // Transpose: every column gets a row; the remaining rows are unassigned.
        let col_to_row = solve(cols, rows, |c, r| clean(cost[r * cols + c]));
        let mut out = vec![None; rows];
        for (c, r) in col_to_row.into_iter().enumerate() {
            out[r] = Some(c);
        }
        out
    }
}

/// The Munkres procedure of the Python `munkres` package (`Munkres().compute`), step for step.
///
/// Returns, for each row, the column whose zero ends up starred (`None` for rows that land on a
/// zero padding column, possible only when rows > cols). Non-finite costs are replaced by a
/// large finite value first (the Python code has no defined behaviour for them).
pub fn munkres(cost: &[f64], rows: usize, cols: usize) -> Vec<Option<usize>> {
    assert_eq!(cost.len(), rows * cols, "cost matrix must be rows x cols");
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    let mut m = Munkres::new(cost, rows, cols);
    m.run();
    (0..rows).map(|i| (0..cols).find(|&j| m.marked[i * m.n + j] == STAR)).collect()
}

const STAR: u8 = 1;
const PRIME: u8 = 2;

/// State of one `Munkres.compute` run on the zero-padded n x n matrix.
struct Munkres {
    n: usize,
    c: Vec<f64>,
    row_covered: Vec<bool>,
    col_covered: Vec<bool>,
    marked: Vec<u8>,
    z0: (usize, usize),
}

impl Munkres {
    fn new(cost: &[f64], rows: usize, cols: usize) -> Munkres {
        let n = rows.max(cols);
        let mut c = vec![0f64; n * n];
        for i in 0..rows {
            for j in 0..cols {
                let v = cost[i * cols + j];
                c[i * n + j] = if v.is_finite() { v } else { NON_FINITE_COST };
            }
        }
        Munkres { n, c, row_covered: vec![false; n], col_covered: vec![false; n], marked: vec![0; n * n], z0: (0, 0) }
    }

    fn run(&mut self) {
        self.step1();
        self.step2();
        loop {
            // Step 3: done when every column holds a star.
            if self.cover_starred_columns() >= self.n {
                return;
            }
            // Steps 4 and 6 alternate until step 4 finds an uncovered prime with no star in its row.
            while !self.step4() {
                self.step6();
            }
            self.step5();
        }
    }

    /// Subtract each row's minimum from the row (Python `min` keeps the first of equal values).
    fn step1(&mut self) {
        let n = self.n;
        for row in self.c.chunks_exact_mut(n) {
            let mut minval = row[0];
            for &x in &row[1..] {
                if x < minval {
                    minval = x;
                }
            }
            for x in row.iter_mut() {
                *x -= minval;
            }
        }
    }

    /// Star the first zero of each row whose column has no star yet (row-major scan).
    fn step2(&mut self) {
        let n = self.n;
        for i in 0..n {
            for j in 0..n {
                if self.c[i * n + j] == 0.0 && !self.col_covered[j] && !self.row_covered[i] {
                    self.marked[i * n + j] = STAR;
                    self.col_covered[j] = true;
                    self.row_covered[i] = true;
                    break;
                }
            }
        }
        self.clear_covers();
    }

    /// Step 3: cover the columns holding a star; returns how many.
    fn cover_starred_columns(&mut self) -> usize {
        let n = self.n;
        let mut count = 0;
        for i in 0..n {
            for j in 0..n {
                if self.marked[i * n + j] == STAR && !self.col_covered[j] {
                    self.col_covered[j] = true;
                    count += 1;
                }
            }
        }
        count
    }

    /// Step 4: prime uncovered zeros; true when one has no star in its row (go to step 5),
    /// false when no uncovered zero is left (go to step 6).
    fn step4(&mut self) -> bool {
        // The next search starts at the row of the last prime and the column of its star.
        let (mut row, mut col) = (0usize, 0usize);
        loop {
            match self.find_a_zero(row, col) {
                None => return false,
                Some((r, c)) => {
                    row = r;
                    self.marked[r * self.n + c] = PRIME;
                    match self.find_in_row(r, STAR) {
                        Some(star_col) => {
                            col = star_col;
                            self.row_covered[r] = true;
                            self.col_covered[star_col] = false;
                        }
                        None => {
                            self.z0 = (r, c);
                            return true;
                        }
                    }
                }
            }
        }
    }

    /// The package's `__find_a_zero(i0, j0)`: rows from i0 (wrapping), and in the first row that
    /// has an uncovered zero, the LAST such zero when scanning its columns from j0 (wrapping):
    /// the inner scan does not stop at the first hit.
    fn find_a_zero(&self, i0: usize, j0: usize) -> Option<(usize, usize)> {
        let n = self.n;
        let mut found = None;
        let mut i = i0;
        loop {
            let mut j = j0;
            loop {
                if self.c[i * n + j] == 0.0 && !self.row_covered[i] && !self.col_covered[j] {
                    found = Some((i, j));
                }
                j = (j + 1) % n;
                if j == j0 {
                    break;
                }
            }
            i = (i + 1) % n;
            if found.is_some() || i == i0 {
                return found;
            }
        }
    }

    fn find_in_row(&self, row: usize, mark: u8) -> Option<usize> {
        (0..self.n).find(|&j| self.marked[row * self.n + j] == mark)
    }

    fn find_star_in_col(&self, col: usize) -> Option<usize> {
        (0..self.n).find(|&i| self.marked[i * self.n + col] == STAR)
    }

    /// Step 5: alternate prime / star path from Z0; swap stars and primes along it.
    fn step5(&mut self) {
        let n = self.n;
        let mut path = vec![self.z0];
        loop {
            let last_col = path[path.len() - 1].1;
            let Some(r) = self.find_star_in_col(last_col) else { break };
            path.push((r, last_col));
            // A primed zero always exists in the row of a star on the path.
            let c = self.find_in_row(r, PRIME).expect("munkres: no prime in the row of a path star");
            path.push((r, c));
        }
        for &(r, c) in &path {
            let m = &mut self.marked[r * n + c];
            *m = if *m == STAR { 0 } else { STAR };
        }
        self.clear_covers();
        for m in self.marked.iter_mut() {
            if *m == PRIME {
                *m = 0;
            }
        }
    }

    /// Step 6: add the smallest uncovered value to covered rows, subtract it from uncovered
    /// columns (both, in that order, where a covered row meets an uncovered column).
    fn step6(&mut self) {
        let n = self.n;
        // Python starts from sys.maxsize (an int; compared exactly with the floats).
        let mut minval = 9_223_372_036_854_775_807f64;
        for i in 0..n {
            for j in 0..n {
                if !self.row_covered[i] && !self.col_covered[j] && minval > self.c[i * n + j] {
                    minval = self.c[i * n + j];
                }
            }
        }
        for i in 0..n {
            for j in 0..n {
                let x = &mut self.c[i * n + j];
                if self.row_covered[i] {
                    *x += minval;
                }
                if !self.col_covered[j] {
                    *x -= minval;
                }
            }
        }
    }

    fn clear_covers(&mut self) {
        self.row_covered.iter_mut().for_each(|c| *c = false);
        self.col_covered.iter_mut().for_each(|c| *c = false);
    }
}

/// Total cost of an assignment as returned by [`min_cost_assignment`].
pub fn assignment_cost(cost: &[f64], cols: usize, assignment: &[Option<usize>]) -> f64 {
    assignment.iter().enumerate().filter_map(|(r, c)| c.map(|c| cost[r * cols + c])).sum()
}

/// Shortest augmenting paths with potentials for an n x m matrix, n <= m. Returns the column of
/// each row. Internally 1-based: index 0 is the virtual source column.
fn solve(n: usize, m: usize, a: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    debug_assert!(n <= m);
    let mut u = vec![0f64; n + 1]; // row potentials
    let mut v = vec![0f64; m + 1]; // column potentials
    let mut p = vec![0usize; m + 1]; // p[j]: row (1-based) matched to column j, 0 = free
    let mut way = vec![0usize; m + 1]; // previous column on the shortest path
    let mut minv = vec![0f64; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|x| *x = f64::INFINITY);
        used.iter_mut().for_each(|x| *x = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = usize::MAX;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let cur = a(i0 - 1, j - 1) - u[i0] - v[j];
                if cur < minv[j] {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if j1 == usize::MAX || minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            // n <= m guarantees a free column while row i is unmatched.
            debug_assert!(j1 != usize::MAX);
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path back to the source.
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut row_col = vec![0usize; n];
    for j in 1..=m {
        if p[j] != 0 {
            row_col[p[j] - 1] = j - 1;
        }
    }
    row_col
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;


    /// Minimum over all injective maps of the smaller side into the larger one.
    fn brute_force(cost: &[f64], rows: usize, cols: usize) -> f64 {
        fn rec(cost: &[f64], rows: usize, cols: usize, r: usize, used: &mut Vec<bool>, transposed: bool) -> f64 {
            let (n, m) = if transposed { (cols, rows) } else { (rows, cols) };
            if r == n {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for c in 0..m {
                if used[c] {
                    continue;
                }
                used[c] = true;
                let here = if transposed { cost[c * cols + r] } else { cost[r * cols + c] };
                best = best.min(here + rec(cost, rows, cols, r + 1, used, transposed));
                used[c] = false;
            }
            best
        }
        let transposed = rows > cols;
        let m = rows.max(cols);
        rec(cost, rows, cols, 0, &mut vec![false; m], transposed)
    }

    fn check_valid(assignment: &[Option<usize>], rows: usize, cols: usize) {
        assert_eq!(assignment.len(), rows);
        let assigned: Vec<usize> = assignment.iter().flatten().copied().collect();
        assert_eq!(assigned.len(), rows.min(cols), "{assignment:?}");
        let mut seen = vec![false; cols];
        for &c in &assigned {
            assert!(c < cols && !seen[c], "{assignment:?}");
            seen[c] = true;
        }
    }

    /// The kinds of matrices the grouping produces: rounded tag distances times 100 minus a
    /// score in (0, 1], many exact ties, 1e10 padding columns; plus plain random ones.
    fn random_matrix(rng: &mut SplitMix64, rows: usize, cols: usize, kind: u64) -> Vec<f64> {
        let mut m: Vec<f64> = (0..rows * cols)
            .map(|_| match kind {
                0 => rng.unit_f64() * 100.0 - 50.0,
                1 => rng.below(4) as f64,
                2 => rng.below(3) as f64 * 100.0 - (rng.below(4) as f64) * 0.25,
                3 => {
                    if rng.below(3) == 0 {
                        1e10
                    } else {
                        rng.below(5) as f64 * 100.0 - rng.unit_f64()
                    }
                }
                _ => (rng.below(7) as f64 - 3.0) * 1e9 + rng.unit_f64(),
            })
            .collect();
        if kind == 3 && rows > cols {
            // The grouping's own padding: extra columns at 1e10 to make it square.
            let mut padded = Vec::with_capacity(rows * rows);
            for r in 0..rows {
                padded.extend_from_slice(&m[r * cols..(r + 1) * cols]);
                padded.extend(std::iter::repeat_n(1e10, rows - cols));
            }
            m = padded;
        }
        m
    }

    #[test]
    fn matches_brute_force_on_many_small_matrices() {
        let mut rng = SplitMix64(0x5eed);
        let mut cases = 0;
        for seed_round in 0..60 {
            for rows in 1..=7 {
                for cols in 1..=7 {
                    let kind = (seed_round + rows + cols) as u64 % 5;
                    let m = random_matrix(&mut rng, rows, cols, kind);
                    let cols_eff = m.len() / rows;
                    let want = brute_force(&m, rows, cols_eff);
                    let tol = 1e-9 * m.iter().map(|x| x.abs()).fold(1.0, f64::max) * rows as f64;
                    for (name, a) in [
                        ("hungarian", min_cost_assignment(&m, rows, cols_eff)),
                        ("munkres", munkres(&m, rows, cols_eff)),
                    ] {
                        check_valid(&a, rows, cols_eff);
                        let got = assignment_cost(&m, cols_eff, &a);
                        assert!(
                            (got - want).abs() <= tol,
                            "{name}: rows {rows} cols {cols_eff} kind {kind}: got {got} want {want}\n{m:?}\n{a:?}"
                        );
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 60 * 49);
    }

    #[test]
    fn simple_cases() {
        // Square, the anti-diagonal is best.
        let m = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
        let a = min_cost_assignment(&m, 3, 3);
        assert_eq!(assignment_cost(&m, 3, &a), 5.0);
        // More rows than columns: the cheapest rows win the columns.
        let m = [5.0, 1.0, 0.5];
        assert_eq!(min_cost_assignment(&m, 3, 1), vec![None, None, Some(0)]);
        // More columns than rows.
        let m = [5.0, 1.0, 0.5];
        assert_eq!(min_cost_assignment(&m, 1, 3), vec![Some(2)]);
        assert!(min_cost_assignment(&[], 0, 3).is_empty());
        assert_eq!(min_cost_assignment(&[], 2, 0), vec![None, None]);
        // Non-finite entries are avoided when possible and never hang the solver.
        let m = [f64::NAN, 1.0, 2.0, f64::INFINITY];
        assert_eq!(min_cost_assignment(&m, 2, 2), vec![Some(1), Some(0)]);
    }
}
