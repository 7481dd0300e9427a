// Who is signed in, for every page.

import { createContext, useContext } from '../vendor/htm-preact.js';

export const Session = createContext(null);
export const useSession = () => useContext(Session);

const HEADS = new Set(['GD', 'DH']);
export const isHead = (user) => HEADS.has(user?.role);
