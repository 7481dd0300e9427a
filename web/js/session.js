// Who is signed in, for every page.

import { createContext, useContext } from '../vendor/htm-preact.js';

export const Session = createContext(null);
export const useSession = () => useContext(Session);

const HEADS = new Set(['GD', 'DH']);
export const isHead = (user) => HEADS.has(user?.role);

// what the signed-in person may do in a project: their role there, and write and manage rights
export function projectAccess(user, project) {
  const role = project.members.find((m) => m.user_id === user.id)?.role || null;
  const head = isHead(user);
  return { role, head, write: head || role === 'lead' || role === 'member', manage: head || role === 'lead' };
}
