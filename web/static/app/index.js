import { connect } from './common.js';

connect();
