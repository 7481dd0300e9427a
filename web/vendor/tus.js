// tus-js-client's browser bundle (UMD, unchanged in tus.min.js) run as a module: it finds no
// CommonJS or AMD loader and sets window.tus, which this module hands on as named exports.
import './tus.min.js';

export const { Upload, isSupported } = globalThis.tus;
