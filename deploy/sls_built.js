// serverless.yml `custom.built`: build/<stage>/aws.json, written by `python -m deploy.build_bundle <stage>` (the
// stage's rules/enrichment files, secret references, queues, layers). Packaging stops with a clear error when it
// is missing (the build refused the stage, e.g. an enricher needing an extra without aws.layers, or never ran)
// or stale (stages.yml or the stage's rules file changed since): its stamp is the sha256 of both.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');

module.exports = async ({ resolveVariable }) => {
  const stage = await resolveVariable('sls:stage');
  const file = path.join(ROOT, 'build', stage, 'aws.json');
  const rebuild = `run \`python -m deploy.build_bundle ${stage}\` (mailpipe-deploy does) and read its error`;
  if (!fs.existsSync(file)) throw new Error(`stage ${stage}: build/${stage}/aws.json is missing: ${rebuild}`);
  const built = JSON.parse(fs.readFileSync(file, 'utf8'));
  const hash = crypto.createHash('sha256').update(fs.readFileSync(path.join(ROOT, 'stages.yml')));
  if (built.rulesFile) hash.update(fs.readFileSync(path.resolve(ROOT, built.rulesFile)));
  if (hash.digest('hex') !== built.stamp) {
    throw new Error(`stage ${stage}: build/${stage}/aws.json is stale (stages.yml or its rules changed): ${rebuild}`);
  }
  return built;
};
