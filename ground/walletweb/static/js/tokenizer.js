// The simulated card tokenizer: what an acquirer's card-entry SDK does in a
// real app. It takes the card number from its own field, checks it (Luhn,
// network from the first digits), and gives the wallet only a token, the
// network, the last four digits and the expiry. The number never leaves
// this module: it is not sent anywhere (the simulated acquirer needs no
// network) and not stored; the field is cleared at once.
//
// Test numbers pick the simulated acquirer's outcome (ground/clearing
// SimAcquirer) through the token's prefix:
//   4000 0000 0000 9995  declined, insufficient funds   (tok_insufficient_…)
//   4000 0000 0000 0069  declined, card expired          (tok_expired_…)
//   4100 0000 0000 0019  declined, fraud suspected       (tok_fraud_…)
//   any other valid number: approved                    (tok_sim_…)

const NETWORKS = [
  ["amex", /^3[47]/, [15]],
  ["jcb", /^35(2[89]|[3-8])/, [16, 17, 18, 19]],
  ["discover", /^(6011|65|64[4-9])/, [16, 19]],
  ["mastercard", /^(5[1-5]|2(2[2-9]|[3-6]|7[01]|720))/, [16]],
  ["visa", /^4/, [13, 16, 19]],
];

const OUTCOMES = { "4000000000009995": "tok_insufficient_", "4000000000000069": "tok_expired_", "4100000000000019": "tok_fraud_" };

export const NETWORK_NAMES = { visa: "Visa", mastercard: "Mastercard", amex: "American Express", discover: "Discover", jcb: "JCB" };

function luhn(d) {
  let sum = 0;
  for (let i = 0; i < d.length; i++) {
    let x = d.charCodeAt(d.length - 1 - i) - 48;
    if (i % 2) {
      x *= 2;
      if (x > 9) x -= 9;
    }
    sum += x;
  }
  return sum % 10 === 0;
}

// tokenize reads the number from numberInput (clearing it whatever
// happens) and the expiry "MM/YY" or "MM/YYYY", and returns
// {network, token, last4, exp_month, exp_year}.
export function tokenize(numberInput, expiry, now = new Date()) {
  const digits = numberInput.value.replace(/[\s-]/g, "");
  numberInput.value = "";
  if (!/^\d{12,19}$/.test(digits)) throw new Error("card number: want 12 to 19 digits");
  if (!luhn(digits)) throw new Error("card number: the check digit is wrong; check the number");
  const net = NETWORKS.find(([, re, lens]) => re.test(digits) && lens.includes(digits.length));
  if (!net) throw new Error("card: only Visa, Mastercard, American Express, Discover and JCB cards are accepted");
  const m = /^(\d{2})\s*\/\s*(\d{2}|\d{4})$/.exec(expiry.trim());
  if (!m) throw new Error("expiry: want MM/YY, for example 09/29");
  const month = Number(m[1]);
  const year = m[2].length === 2 ? 2000 + Number(m[2]) : Number(m[2]);
  if (month < 1 || month > 12) throw new Error("expiry: the month must be 01 to 12");
  if (new Date(Date.UTC(year, month, 1)) <= now) throw new Error(`this card expired at the end of ${m[1]}/${year}`);
  const token = (OUTCOMES[digits] || "tok_sim_") + randomLetters(20);
  return { network: net[0], token, last4: digits.slice(-4), exp_month: month, exp_year: year };
}

// randomLetters returns n random lower-case letters (about 4.7 bits each).
// A token holds no digits at all: ground refuses one with a run of 12 or
// more, which random hex would sometimes have.
function randomLetters(n) {
  let s = "";
  while (s.length < n) {
    for (const x of crypto.getRandomValues(new Uint8Array(n))) {
      if (x < 234 && s.length < n) s += String.fromCharCode(97 + (x % 26)); // 234 = 9 × 26: unbiased
    }
  }
  return s;
}
