//! MaxScore over one segment's term postings: the top rows of a disjunction of terms without
//! visiting every row that matches one of them.
//!
//! Terms are ordered by the most any one row can score on them (their upper bound). While the
//! bounds of the weakest terms add up to no more than the score a row needs to enter the top
//! (the threshold), a row matching only those cannot enter: they are *non-essential*, and rows
//! are found by walking the *essential* terms' postings alone. The non-essential terms are then
//! looked up for each such row, strongest first, and the look-ups stop as soon as what they could
//! still add cannot lift the row over the threshold. As the threshold rises, more terms become
//! non-essential. Each posting block also records the most a row in it can score on its term:
//! when the blocks the essential terms are in cannot lift any row over the threshold together,
//! the walk jumps past the first of them to end. This is block-max MaxScore, the algorithm Lucene
//! uses for long disjunctions; tantivy's block-max WAND re-sorts every term's cursor at every
//! step, which costs most on the 10–20-term queries agents send.
//!
//! The essential terms are walked a window of rows at a time and a term at a time, as Lucene's
//! `MaxScoreBulkScorer` does: each term's postings in the window are scored in one tight loop
//! into the window's sums, and only then are the rows found taken in order, looked up on the
//! other terms and passed on. Walking the terms row by row instead costs a look at every
//! essential term for every row found, which was most of the time on long queries.

use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::BlockSegmentPostings;
use tantivy::query::{Bm25Weight, EnableScoring};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, Score, SegmentReader, TERMINATED, Term};

/// Rows per posting block (tantivy's compression block).
const BLOCK: usize = 128;

/// Block maxima are widened by this factor, a margin for maxima recorded under a segment's own
/// average length (see `for_each_pruning`).
const SLACK: Score = 1.0 + 1e-5;

/// A term to score by BM25, with the most one row can score on it.
pub(super) struct Clause {
    term: Term,
    weight: Bm25Weight,
}

impl Clause {
    /// `scoring` must be enabled: its statistics give the term's BM25 weight.
    pub(super) fn new(term: Term, scoring: EnableScoring<'_>) -> tantivy::Result<Clause> {
        let EnableScoring::Enabled {
            statistics_provider,
            ..
        } = scoring
        else {
            return Err(tantivy::TantivyError::InvalidArgument(
                "BM25 needs scoring enabled".to_string(),
            ));
        };
        let weight = Bm25Weight::for_terms(statistics_provider, std::slice::from_ref(&term))?;
        Ok(Clause { term, weight })
    }
}

/// One term's postings in one segment, a row at a time, with the block it is in.
struct Cursor {
    postings: BlockSegmentPostings,
    /// The row's place in the loaded block.
    at: usize,
    fieldnorms: FieldNormReader,
    weight: Bm25Weight,
    max_score: Score,
}

/// A row in a term's postings, scored only if asked.
struct Posting<'a> {
    doc: DocId,
    freq: u32,
    weight: &'a Bm25Weight,
    fieldnorms: &'a FieldNormReader,
}

impl Posting<'_> {
    #[inline]
    fn score(&self) -> Score {
        self.weight
            .score(self.fieldnorms.fieldnorm_id(self.doc), self.freq)
    }
}

impl Cursor {
    #[inline]
    fn doc(&self) -> DocId {
        self.postings.doc(self.at)
    }

    /// Calls `each` with each of this term's postings from the cursor up to `last`; the cursor
    /// ends past `last`.
    #[inline]
    fn walk_to(&mut self, last: DocId, mut each: impl FnMut(Posting<'_>)) {
        let Cursor {
            postings,
            at,
            fieldnorms,
            weight,
            ..
        } = self;
        loop {
            let docs = postings.docs();
            let freqs = postings.freqs();
            for (i, (&doc, &freq)) in docs.iter().zip(freqs).enumerate().skip(*at) {
                if doc > last {
                    *at = i;
                    return;
                }
                each(Posting {
                    doc,
                    freq,
                    weight,
                    fieldnorms,
                });
            }
            if docs.len() < BLOCK {
                // The last block: the cursor rests on the padding after it (`TERMINATED`).
                *at = docs.len();
                return;
            }
            *at = 0;
            postings.advance();
        }
    }

    /// Adds this term's score of each of its rows from the cursor up to `last` into `sums`
    /// (indexed from `first`) and marks the rows in `found`; the cursor ends past `last`.
    #[inline]
    fn add_up_to(&mut self, first: DocId, last: DocId, sums: &mut [Fixed], found: &mut [u64]) {
        self.walk_to(last, |p| {
            let i = (p.doc - first) as usize;
            sums[i] += to_fixed(p.score());
            found[i / 64] |= 1 << (i % 64);
        });
    }

    /// Adds this term's score of the `found` rows (`count` of them) in the window from `first`
    /// to `last` into `sums`. A term with few postings in the window per row found is walked
    /// through them; otherwise each row is sought in its postings (skipping whole blocks).
    /// `rows` is the segment's row count.
    fn add_found(
        &mut self,
        first: DocId,
        last: DocId,
        count: usize,
        rows: u32,
        sums: &mut [Fixed],
        found: &[u64],
    ) {
        let in_window = u64::from(self.postings.doc_freq()) * u64::from(last - first + 1)
            / u64::from(rows.max(1));
        if in_window <= WALK_PER_SEEK * count as u64 {
            self.seek(first);
            self.add_found_walking(first, last, sums, found);
            return;
        }
        for (word, &bits) in found.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let at = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let doc = first + at as DocId;
                self.seek(doc);
                if self.doc() == doc {
                    sums[at] += to_fixed(self.score());
                }
            }
        }
    }

    /// `add_found` by walking this term's postings through the window.
    fn add_found_walking(&mut self, first: DocId, last: DocId, sums: &mut [Fixed], found: &[u64]) {
        self.walk_to(last, |p| {
            let i = (p.doc - first) as usize;
            if found[i / 64] & (1 << (i % 64)) != 0 {
                sums[i] += to_fixed(p.score());
            }
        });
    }

    /// To the first row at or after `target`.
    #[inline]
    fn seek(&mut self, target: DocId) {
        if self.doc() < target {
            self.at = self.postings.seek(target);
        }
    }

    #[inline]
    fn score(&self) -> Score {
        let doc = self.doc();
        self.weight.score(
            self.fieldnorms.fieldnorm_id(doc),
            self.postings.freq(self.at),
        )
    }

    /// The last row of the loaded block.
    fn block_last(&self) -> DocId {
        self.postings.docs().last().copied().unwrap_or(TERMINATED)
    }

    /// The most a row of the loaded block scores on this term.
    fn block_max(&mut self) -> Score {
        self.postings
            .block_max_score(&self.fieldnorms, &self.weight)
            .min(self.max_score)
    }
}

/// Calls `callback` with every row of `reader` matching any of `clauses` whose score may exceed
/// `threshold` (every row scoring above it is passed; some below may be), in row order;
/// `callback` returns the new threshold, which never goes down. A row's score is its terms' BM25
/// scores summed in fixed point, so the same to the last bit whichever terms were walked.
///
/// With `block_max`, stretches are skipped by the maxima tantivy records per posting block. It
/// records the (length, frequency) pair scoring best under the segment's own average length, so
/// under other statistics (the document level's, whose average is over documents, not rows) a
/// block's maximum can be another row's, and only the terms' own bounds are safe. At chunk level
/// the collection's average differs from a segment's by little, and tantivy's own block-max WAND
/// makes the same trade.
pub(super) fn for_each_pruning(
    clauses: &[Clause],
    field: tantivy::schema::Field,
    block_max: bool,
    reader: &SegmentReader,
    mut threshold: Score,
    callback: &mut dyn FnMut(DocId, Score) -> Score,
) -> tantivy::Result<()> {
    let index = reader.inverted_index(field)?;
    let fieldnorms = reader.get_fieldnorms_reader(field)?;
    let mut cursors: Vec<Cursor> = Vec::with_capacity(clauses.len());
    for clause in clauses {
        let Some(postings) =
            index.read_block_postings(&clause.term, IndexRecordOption::WithFreqs)?
        else {
            continue;
        };
        let cursor = Cursor {
            postings,
            at: 0,
            fieldnorms: fieldnorms.clone(),
            weight: clause.weight.clone(),
            max_score: clause.weight.max_score(),
        };
        if cursor.doc() != TERMINATED {
            cursors.push(cursor);
        }
    }
    // Weakest first; `bound[i]`: the most terms 0..=i can add to a row together, in fixed
    // point (a row's share rounds down, so it is at most its term's bound).
    cursors.sort_by(|a, b| a.max_score.total_cmp(&b.max_score));
    let mut bound = Vec::with_capacity(cursors.len());
    let mut sum = 0;
    for cursor in &cursors {
        sum += to_fixed(cursor.max_score) + 1;
        bound.push(sum);
    }
    // A row whose sum is at most `cut` scores at most the threshold.
    let mut cut = at_most(threshold);
    // Terms before `essential` cannot lift a row over the threshold on their own.
    let essential_from = |cut: Fixed| bound.iter().take_while(|&&b| b <= cut).count();
    let mut essential = essential_from(cut);
    // The rows found in the current window: each one's sum so far, and which rows were found.
    let mut sums = vec![0; WINDOW];
    let mut found = [0u64; WINDOW / 64];
    let rows = reader.max_doc();
    while essential < cursors.len() {
        let first = cursors[essential..]
            .iter()
            .map(Cursor::doc)
            .min()
            .unwrap_or(TERMINATED);
        if first == TERMINATED {
            break;
        }
        if block_max {
            let w = Window::at(&mut cursors[essential..], bound_below(&bound, essential));
            if w.max <= cut {
                // A row was found, so some cursor is live and the window ends at a real row.
                for cursor in &mut cursors[essential..] {
                    cursor.seek(w.end + 1);
                }
                continue;
            }
        }
        // The window's rows are found and scored a term at a time: a tight loop over each
        // essential term's postings in it, instead of looking at every term for every row.
        let last = first
            .saturating_add(WINDOW as DocId - 1)
            .min(TERMINATED - 1);
        for cursor in &mut cursors[essential..] {
            cursor.add_up_to(first, last, &mut sums, &mut found);
        }
        // The other terms are added for the rows that may still pass, strongest first, a term at
        // a time; after each, rows that cannot pass whatever the weaker ones add are dropped.
        // The terms are split as they were when the window was scored, even if the threshold
        // rises inside it (the rows still to come were scored on all of them).
        let split = essential;
        let mut left = keep_above(&mut found, &mut sums, cut - bound_below(&bound, split));
        for j in (0..split).rev() {
            if left == 0 {
                break;
            }
            cursors[j].add_found(first, last, left, rows, &mut sums, &found);
            left = keep_above(&mut found, &mut sums, cut - bound_below(&bound, j));
        }
        // The rows left, in order, each passed if it scores above the threshold now.
        for (word, bits) in found.iter_mut().enumerate() {
            let mut bits = std::mem::take(bits);
            while bits != 0 {
                let at = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let score = from_fixed(std::mem::take(&mut sums[at]));
                if score > threshold {
                    threshold = callback(first + at as DocId, score);
                    cut = at_most(threshold);
                }
            }
        }
        essential = essential_from(cut);
    }
    Ok(())
}

/// Keeps in `found` the rows whose sum is above `floor` (the others' sums back to zero); how
/// many are kept.
fn keep_above(found: &mut [u64], sums: &mut [Fixed], floor: Fixed) -> usize {
    let mut kept = 0;
    for (word, bits) in found.iter_mut().enumerate() {
        let mut rest = *bits;
        while rest != 0 {
            let bit = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let at = word * 64 + bit;
            if sums[at] <= floor {
                sums[at] = 0;
                *bits &= !(1 << bit);
            } else {
                kept += 1;
            }
        }
    }
    kept
}

/// A term's postings in a window are walked rather than each row found sought in them while
/// there are at most this many per row (a seek searches the skip list and a block; a step of the
/// walk tests one bit).
const WALK_PER_SEEK: u64 = 8;

/// Rows scored together, a term at a time.
const WINDOW: usize = 4096;

/// A score in fixed point, in units of 2^-32. Scores are summed in it so that a row's score is
/// the same to the last bit in whichever order its terms were added (floating-point addition is
/// not associative, and a row's terms are added in another order when some of them are looked
/// up rather than walked), and so that comparing a sum with the threshold is an integer compare.
type Fixed = i64;

/// 2^32, the fixed point's one.
const FIXED_ONE: Score = 4_294_967_296.0;

/// A share (at least 0) in fixed point, rounded down: scaling by a power of two is exact.
#[inline]
fn to_fixed(score: Score) -> Fixed {
    (score * FIXED_ONE) as Fixed
}

/// A sum back as a score, rounded once.
#[inline]
fn from_fixed(sum: Fixed) -> Score {
    sum as Score / FIXED_ONE
}

/// The largest sum that scores at most `threshold`, or near it: a sum at most this one scores at
/// most `threshold` (rounded down, `threshold` scaled is exact, and so is scaling back before
/// the one rounding). Below zero, no sum does.
fn at_most(threshold: Score) -> Fixed {
    if threshold < 0.0 {
        -1
    } else {
        to_fixed(threshold)
    }
}

/// The most the terms before `essential` can add to a row together.
fn bound_below(bound: &[Fixed], essential: usize) -> Fixed {
    if essential == 0 {
        0
    } else {
        bound[essential - 1]
    }
}

/// A stretch of rows up to the end of the first of the essential terms' loaded blocks, and the
/// most a row in it can score: their blocks' maxima and what the other terms can add together.
#[derive(Clone, Copy)]
struct Window {
    end: DocId,
    max: Fixed,
}

impl Window {
    /// The window the essential cursors are at, `below` being the most the other terms add. (A
    /// term whose postings have run out adds nothing: its cursor is on the padding after its
    /// last block's rows, which would otherwise give a window ending behind the row.)
    fn at(essential: &mut [Cursor], below: Fixed) -> Window {
        let mut max = below;
        let mut end = TERMINATED;
        for cursor in essential.iter_mut() {
            if cursor.doc() != TERMINATED {
                max += to_fixed(cursor.block_max() * SLACK) + 1;
                end = end.min(cursor.block_last());
            }
        }
        Window { end, max }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{Index, doc};

    /// One segment holding `bodies` in order, in its `text` field.
    fn one_segment(bodies: impl IntoIterator<Item = String>) -> (Index, tantivy::schema::Field) {
        let mut builder = Schema::builder();
        let text = builder.add_text_field("text", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer = index.writer_with_num_threads(1, 50_000_000).unwrap();
        for body in bodies {
            writer.add_document(doc!(text => body)).unwrap();
        }
        writer.commit().unwrap();
        (index, text)
    }

    /// A stretch skipped on block maxima ends where the first essential block ends. Rows in
    /// order in one segment: the frequent term's weak blocks and the rare term's one weak block
    /// are skipped together, and the best row is in a strong block of the frequent term that
    /// lies inside the rare term's weak block.
    #[test]
    fn a_skip_stops_at_the_first_block_end() {
        let pad = |n: usize| vec!["pad"; n].join(" ");
        let (index, text) = one_segment((0..4000).map(|i| match i {
            0 => "often often".to_string(),
            905 => ["often"; 6].join(" "),
            1..128 => format!("often seldom {}", pad(1500)),
            128..1300 if i % 10 == 1 => format!("often seldom {}", pad(1500)),
            128..1300 => format!("often {}", pad(200)),
            _ => pad(50),
        }));
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 1);
        let scoring = EnableScoring::enabled_from_searcher(&searcher);
        let clauses: Vec<Clause> = ["often", "seldom"]
            .iter()
            .map(|w| Clause::new(Term::from_field_text(text, w), scoring).unwrap())
            .collect();
        let reader = &searcher.segment_readers()[0];
        for block_max in [false, true] {
            let mut best: Option<(DocId, Score)> = None;
            for_each_pruning(&clauses, text, block_max, reader, 0.0, &mut |doc, score| {
                if best.is_none_or(|(_, s)| score > s) {
                    best = Some((doc, score));
                }
                best.map_or(0.0, |(_, s)| s)
            })
            .unwrap();
            assert_eq!(best.map(|b| b.0), Some(905), "block maxima: {block_max}");
        }
    }

    /// A row scores the same to the last bit whether its weaker terms were walked or looked up
    /// (ties between rows break on the row, so a last-bit difference would change answers
    /// between threads). From threshold zero every term is walked; from higher thresholds the
    /// weaker terms are only looked up, and each row passed must score as it did walked.
    #[test]
    fn a_row_scores_alike_walked_or_looked_up() {
        let mut random = crate::search::xorshift(0x5851_f42d_4c95_7f2d);
        // Words w0..w39, word k drawn about 1/(k+1) as often as w0: terms of many weights.
        let weights: Vec<u64> = (0..40).map(|k| 840 / (k + 1)).collect();
        let total: u64 = weights.iter().sum();
        let word = move |pick: u64| {
            let mut pick = pick % total;
            for (k, &w) in weights.iter().enumerate() {
                if pick < w {
                    return format!("w{k}");
                }
                pick -= w;
            }
            unreachable!("the weights sum to the total")
        };
        let (index, text) = one_segment((0..6000).map(|_| {
            let len = 5 + random() % 120;
            let words: Vec<String> = (0..len).map(|_| word(random())).collect();
            words.join(" ")
        }));
        let searcher = index.reader().unwrap().searcher();
        let reader = &searcher.segment_readers()[0];
        let scoring = EnableScoring::enabled_from_searcher(&searcher);
        let mut compared = 0;
        for query in 0..30 {
            let clauses: Vec<Clause> = (0..8)
                .map(|i| {
                    let word = format!("w{}", (query * 7 + i * 5) % 40);
                    Clause::new(Term::from_field_text(text, &word), scoring).unwrap()
                })
                .collect();
            let mut walked = std::collections::HashMap::new();
            for_each_pruning(&clauses, text, true, reader, 0.0, &mut |doc, score| {
                walked.insert(doc, score.to_bits());
                0.0
            })
            .unwrap();
            let mut scores: Vec<Score> = walked.values().map(|&b| Score::from_bits(b)).collect();
            scores.sort_by(|a, b| b.total_cmp(a));
            let weakest = clauses
                .iter()
                .map(|c| c.weight.max_score())
                .fold(Score::MAX, Score::min);
            for rank in [10, 100, 1000] {
                let threshold = scores[rank];
                assert!(
                    at_most(threshold) > to_fixed(weakest),
                    "some term is only looked up"
                );
                for block_max in [false, true] {
                    for_each_pruning(
                        &clauses,
                        text,
                        block_max,
                        reader,
                        threshold,
                        &mut |doc, score| {
                            assert_eq!(score.to_bits(), walked[&doc], "row {doc}, query {query}");
                            compared += 1;
                            threshold
                        },
                    )
                    .unwrap();
                }
            }
        }
        assert!(compared > 50_000, "{compared} rows compared");
    }

    /// No sum at most `at_most(t)` scores above `t`, the threshold, and the cut is no more
    /// than a millionth under it (or pruning would be lost).
    #[test]
    fn a_sum_under_the_cut_scores_at_most_the_threshold() {
        let mut random = crate::search::xorshift(0x2c1b_3c6d_9f4e_8a77);
        let mut thresholds = vec![
            0.0,
            -0.0,
            0.0f32.next_down(),
            f32::MIN_POSITIVE,
            1e-12,
            30.0,
        ];
        thresholds.extend((0..10_000).map(|_| (random() % 1_000_000_000) as f32 / 1e7));
        for t in thresholds {
            let cut = at_most(t);
            assert!(from_fixed(cut) <= t, "{t}: {cut}");
            if t >= 0.0 {
                assert!(cut >= to_fixed(t * (1.0 - 1e-6)), "{t}: {cut}");
            }
        }
    }
}
