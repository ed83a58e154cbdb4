// Money as the cabin server sends it: {minor, currency}, integer minor
// units. Never a float: formatting works on the integer's digits.

// EXPONENTS are ISO 4217 minor-unit digits, as in protocol/money.go.
const EXPONENTS = {
  AED: 2, AUD: 2, BHD: 3, BRL: 2, CAD: 2, CHF: 2, CNY: 2, CZK: 2, DKK: 2, EUR: 2, GBP: 2, HKD: 2,
  HUF: 2, INR: 2, ISK: 0, JPY: 0, KRW: 0, KWD: 3, MXN: 2, NOK: 2, NZD: 2, OMR: 3, PLN: 2, QAR: 2,
  SAR: 2, SEK: 2, SGD: 2, THB: 2, TRY: 2, USD: 2, ZAR: 2,
};

// format returns "12.40 EUR" for {minor: 1240, currency: 'EUR'}.
export function format(m) {
  if (!m || typeof m.minor !== 'number') return '–';
  const e = EXPONENTS[m.currency] ?? 2;
  const neg = m.minor < 0;
  let digits = String(Math.abs(m.minor));
  if (e > 0) {
    digits = digits.padStart(e + 1, '0');
    digits = digits.slice(0, -e) + '.' + digits.slice(-e);
  }
  return (neg ? '-' : '') + digits + ' ' + m.currency;
}

// sum adds integer minor units of one currency.
export function money(minor, currency) {
  return { minor, currency };
}
