//! Shopify product CSV exports, streamed. Two header dialects: the legacy one (`Handle`,
//! `Body (HTML)`, `Variant Price`, …) and the 2025 one (`URL handle`, `Description`, `Price`,
//! …). A product spans consecutive rows with its handle: the first carries the product's
//! fields, variant rows carry option values, SKU and price, image-only rows carry neither.
//! A bad row fails its whole product (never a half-written one); the next product goes on.

use std::collections::HashSet;
use std::io::Read;

use super::{Change, Product, ProductOption, Variant, parse_money_str, split_tags};
use crate::html::html_fragment_to_text;
use crate::{Error, Result};

/// Column indices of the fields we read, resolved once from the header.
struct Columns {
    width: usize,
    handle: usize,
    title: Option<usize>,
    body: Option<usize>,
    vendor: Option<usize>,
    category: Option<usize>,
    kind: Option<usize>,
    tags: Option<usize>,
    status: Option<usize>,
    option_names: [Option<usize>; 3],
    option_values: [Option<usize>; 3],
    sku: Option<usize>,
    barcode: Option<usize>,
    price: Option<usize>,
    compare_at: Option<usize>,
    tracker: Option<usize>,
    quantity: Option<usize>,
    /// Legacy `Variant Inventory Policy` (deny | continue).
    policy: Option<usize>,
    /// 2025 `Continue selling when out of stock` (TRUE | FALSE).
    continue_selling: Option<usize>,
    /// `Image Src`: the first row that has one names the product's image.
    image: Option<usize>,
    /// Header names, for error messages.
    names: Vec<String>,
}

impl Columns {
    fn resolve(header: &csv::StringRecord, file: &str) -> Result<Columns> {
        let names: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
        let find = |candidates: &[&str]| {
            names
                .iter()
                .position(|n| candidates.iter().any(|c| n.eq_ignore_ascii_case(c)))
        };
        let legacy = find(&["Handle"]).is_some();
        let Some(handle) = find(&["Handle", "URL handle"]) else {
            return Err(Error::bad(
                format!("{file}:1"),
                "unknown header dialect: a Shopify product CSV has a `Handle` (legacy) or \
                 `URL handle` (2025) column",
            ));
        };
        let pick = |old: &str, new: &str| find(&[if legacy { old } else { new }]);
        let option = |i: usize, what: &str| find(&[&format!("Option{i} {what}")]);
        Ok(Columns {
            width: names.len(),
            handle,
            title: find(&["Title"]),
            body: pick("Body (HTML)", "Description"),
            vendor: find(&["Vendor"]),
            category: find(&["Product Category"]),
            kind: find(&["Type"]),
            tags: find(&["Tags"]),
            status: find(&["Status"]),
            option_names: [option(1, "Name"), option(2, "Name"), option(3, "Name")],
            option_values: [option(1, "Value"), option(2, "Value"), option(3, "Value")],
            sku: pick("Variant SKU", "SKU"),
            barcode: pick("Variant Barcode", "Barcode"),
            price: pick("Variant Price", "Price"),
            compare_at: pick("Variant Compare At Price", "Compare-at price"),
            tracker: pick("Variant Inventory Tracker", "Inventory tracker"),
            quantity: pick("Variant Inventory Qty", "Inventory quantity"),
            policy: find(&["Variant Inventory Policy"]),
            continue_selling: find(&["Continue selling when out of stock"]),
            image: find(&["Image Src"]),
            names,
        })
    }

    fn name(&self, i: Option<usize>) -> &str {
        i.and_then(|i| self.names.get(i))
            .map_or("?", String::as_str)
    }
}

fn get(row: &csv::StringRecord, i: Option<usize>) -> &str {
    i.and_then(|i| row.get(i)).unwrap_or("").trim()
}

/// The product being gathered from consecutive rows of one handle.
struct Group {
    handle: String,
    line: u64,
    product: Product,
    /// The first error among its rows: the whole product fails with it.
    error: Option<Error>,
}

/// Streams products from a CSV export.
pub struct CsvProducts<R: Read> {
    file: String,
    reader: csv::Reader<R>,
    columns: Option<Columns>,
    record: csv::StringRecord,
    group: Option<Group>,
    seen: HashSet<String>,
    done: bool,
}

/// Opens a CSV export; header problems come out as the first item.
pub fn read_csv<R: Read>(input: R, file: &str) -> CsvProducts<R> {
    let reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(input);
    CsvProducts {
        file: file.to_string(),
        reader,
        columns: None,
        record: csv::StringRecord::new(),
        group: None,
        seen: HashSet::new(),
        done: false,
    }
}

impl<R: Read> CsvProducts<R> {
    fn finish_group(&mut self) -> Option<Result<Change>> {
        let g = self.group.take()?;
        self.seen.insert(g.handle.clone());
        Some(match g.error {
            Some(e) => Err(e),
            None => Ok(Change::Upsert(Box::new(g.product))),
        })
    }

    /// Folds one row into the current product (starting a new one when the handle changes);
    /// returns a finished product when this row began the next.
    fn row(&mut self, line: u64) -> Option<Result<Change>> {
        let cols = self.columns.as_ref()?;
        let place = format!("{}:{line}", self.file);
        let handle = get(&self.record, Some(cols.handle)).to_string();
        let short = self.record.len() < cols.width;
        if handle.is_empty() {
            let e = if short {
                Error::bad(
                    &place,
                    format!(
                        "row has {} fields, the header {}",
                        self.record.len(),
                        cols.width
                    ),
                )
            } else {
                Error::bad(
                    &place,
                    format!("field `{}` is empty", cols.name(Some(cols.handle))),
                )
            };
            // A row without a handle cannot be placed: it fails the product it sits in.
            match &mut self.group {
                Some(g) if g.error.is_none() => g.error = Some(e),
                Some(_) => {}
                None => return Some(Err(e)),
            }
            return None;
        }
        let mut finished = None;
        if self.group.as_ref().is_some_and(|g| g.handle != handle) {
            finished = self.finish_group();
        }
        if self.group.is_none() {
            let mut group = Group {
                handle: handle.clone(),
                line,
                product: Product::default(),
                error: None,
            };
            if self.seen.contains(&handle) {
                group.error = Some(Error::bad(
                    &place,
                    format!("rows of product `{handle}` are not together (seen before this line)"),
                ));
            }
            self.group = Some(group);
        }
        let cols = self.columns.as_ref()?;
        let g = self.group.as_mut()?;
        if g.error.is_some() {
            return finished;
        }
        if short {
            g.error = Some(Error::bad(
                &place,
                format!(
                    "row has {} fields, the header {} (truncated row?); product `{handle}` skipped",
                    self.record.len(),
                    cols.width
                ),
            ));
            return finished;
        }
        if let Err(e) = fold_row(&mut g.product, &self.record, cols, &place, g.line == line) {
            g.error = Some(e);
        }
        finished
    }
}

fn fold_row(
    p: &mut Product,
    row: &csv::StringRecord,
    cols: &Columns,
    place: &str,
    first: bool,
) -> Result<()> {
    if first {
        p.handle = get(row, Some(cols.handle)).to_string();
        p.title = get(row, cols.title).to_string();
        if p.title.is_empty() {
            return Err(Error::bad(
                place,
                format!(
                    "field `Title` is empty on the first row of product `{}`",
                    p.handle
                ),
            ));
        }
        p.description = html_fragment_to_text(get(row, cols.body));
        p.vendor = get(row, cols.vendor).to_string();
        p.product_type = get(row, cols.kind).to_string();
        p.category = Some(get(row, cols.category).to_string()).filter(|c| !c.is_empty());
        p.tags = split_tags(get(row, cols.tags));
        p.status = Some(get(row, cols.status).to_ascii_lowercase()).filter(|s| !s.is_empty());
        for name in cols.option_names {
            let n = get(row, name);
            if !n.is_empty() {
                p.options.push(ProductOption {
                    name: n.to_string(),
                    values: Vec::new(),
                });
            }
        }
    }
    if p.image.is_none() {
        p.image = Some(get(row, cols.image).to_string()).filter(|u| !u.is_empty());
    }
    let values: Vec<String> = cols
        .option_values
        .iter()
        .take(p.options.len().max(1))
        .map(|i| get(row, *i).to_string())
        .collect();
    let price = parse_money_str(get(row, cols.price), place, cols.name(cols.price))?;
    let sku = get(row, cols.sku);
    if price.is_none() && sku.is_empty() && values.iter().all(String::is_empty) {
        return Ok(()); // an image-only row
    }
    let quantity = match get(row, cols.quantity) {
        "" => None,
        q => Some(q.parse::<i64>().map_err(|_| {
            Error::bad(
                place,
                format!(
                    "field `{}`: `{q}` is not a whole number",
                    cols.name(cols.quantity)
                ),
            )
        })?),
    };
    for (opt, v) in p.options.iter_mut().zip(&values) {
        if !v.is_empty() && !opt.values.contains(v) {
            opt.values.push(v.clone());
        }
    }
    let title: Vec<&str> = values
        .iter()
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .collect();
    p.variants.push(Variant {
        id: None,
        title: title.join(" / "),
        sku: Some(sku.to_string()).filter(|s| !s.is_empty()),
        barcode: Some(get(row, cols.barcode).to_string()).filter(|s| !s.is_empty()),
        price,
        compare_at_price: parse_money_str(
            get(row, cols.compare_at),
            place,
            cols.name(cols.compare_at),
        )?,
        options: values,
        available: None,
        tracked: get(row, cols.tracker).eq_ignore_ascii_case("shopify"),
        inventory_quantity: quantity,
        continue_selling: get(row, cols.policy).eq_ignore_ascii_case("continue")
            || get(row, cols.continue_selling).eq_ignore_ascii_case("true"),
        inventory_item_id: None,
        levels: Default::default(),
        updated_at: None,
        level_times: Default::default(),
    });
    Ok(())
}

impl<R: Read> Iterator for CsvProducts<R> {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return self.finish_group();
            }
            match self.reader.read_record(&mut self.record) {
                Ok(false) => {
                    self.done = true;
                    if self.columns.is_none() {
                        return Some(Err(Error::bad(&self.file, "the file is empty")));
                    }
                }
                Ok(true) => {
                    let line = self.record.position().map_or(0, |p| p.line());
                    if self.columns.is_none() {
                        match Columns::resolve(&self.record, &self.file) {
                            Ok(c) => self.columns = Some(c),
                            Err(e) => {
                                // Nothing after a header we cannot read is trustworthy.
                                self.done = true;
                                return Some(Err(e));
                            }
                        }
                        continue;
                    }
                    if self.record.iter().all(|f| f.trim().is_empty()) {
                        continue;
                    }
                    if let Some(done) = self.row(line) {
                        return Some(done);
                    }
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    let err = Error::bad(format!("{}:{line}", self.file), format!("{e}"));
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        self.done = true;
                        self.group = None;
                        return Some(Err(err));
                    }
                    match &mut self.group {
                        Some(g) if g.error.is_none() => g.error = Some(err),
                        Some(_) => {}
                        None => return Some(Err(err)),
                    }
                }
            }
        }
    }
}
