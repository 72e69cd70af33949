#!/usr/bin/env node
// Regenerates src/CmpWaldurAdapter/Web/public_suffix_list.dat from the Public Suffix List that the npm package
// tldts carries (rebuilt from publicsuffix.org with every release, so far fresher than a distribution's package).
// tldts ships the list as a flat trie, not as text: this walks it back into rules.
//   cd /tmp && npm pack tldts && tar xzf tldts-*.tgz
//   node scripts/public-suffixes.mjs /tmp/package > src/CmpWaldurAdapter/Web/public_suffix_list.dat
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/public-suffixes.mjs <unpacked tldts package directory>');
  process.exit(2);
}

const { version } = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
const { nodeFlags, edgeStart, edgeLength, edgeChild, labelText, rulesRoot, exceptionsRoot } =
  await import(pathToFileURL(path.join(dir, 'dist/es6/src/data/trie.js')).href);

// Each node's edges carry one label each, stored back to back in labelText; a node with a flag ends a rule
// (1: the ICANN section, 2: the private one). Rules hang right-most label first; exceptions have a tree of their own.
const ICANN = 1;
const labelStart = new Uint32Array(edgeLength.length);
for (let edge = 0, offset = 0; edge < edgeLength.length; edge += 1) {
  labelStart[edge] = offset;
  offset += edgeLength[edge];
}

const sections = { icann: [], private: [] };
const walk = (node, suffix, prefix) => {
  for (let edge = edgeStart[node]; edge < edgeStart[node + 1]; edge += 1) {
    const label = labelText.substr(labelStart[edge], edgeLength[edge]);
    const name = suffix ? `${label}.${suffix}` : label;
    const child = edgeChild[edge];
    if (nodeFlags[child] !== 0) {
      sections[nodeFlags[child] & ICANN ? 'icann' : 'private'].push(prefix + name);
    }
    walk(child, name, prefix);
  }
};
walk(rulesRoot, '', '');
walk(exceptionsRoot, '', '!');

const bySuffix = (a, b) => {
  const key = (rule) => rule.replace(/^!/, '').split('.').reverse().join('.');
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
};
const lines = [
  '// This Source Code Form is subject to the terms of the Mozilla Public',
  '// License, v. 2.0. If a copy of the MPL was not distributed with this',
  '// file, You can obtain one at https://mozilla.org/MPL/2.0/.',
  '',
  `// The Public Suffix List (https://publicsuffix.org/) as the npm package tldts ${version} carries it,`,
  '// written back out as rules by scripts/public-suffixes.mjs.',
  '',
  '// ===BEGIN ICANN DOMAINS===',
  ...sections.icann.sort(bySuffix),
  '// ===END ICANN DOMAINS===',
  '// ===BEGIN PRIVATE DOMAINS===',
  ...sections.private.sort(bySuffix),
  '// ===END PRIVATE DOMAINS===',
];
process.stdout.write(lines.join('\n') + '\n');
